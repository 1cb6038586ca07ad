"""pemu-img: qemu-img compatible image tool."""
