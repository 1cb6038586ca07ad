"""File descriptors handed to pemu by its manager (``-add-fd``, QMP ``add-fd``/``getfd``).

A manager that opens files, sockets and devices itself can run pemu with no file access
of its own (``-runas``, ``-chroot``, ``-sandbox``) and pass them in:

  -add-fd fd=N,set=S[,opaque=TEXT]    fd N (inherited) joins fd set S
  /dev/fdset/S                        wherever pemu opens a file: a dup of the set's fd
                                      whose access mode matches (O_RDONLY/O_WRONLY/O_RDWR)
  fd=N / fd=NAME                      chardev socket: an inherited or getfd'd socket
  QMP add-fd, remove-fd, query-fdsets, getfd, closefd (fds sent with SCM_RIGHTS on the
  QMP unix socket)
"""

from pemu.fdpass.fdsets import FdPassError, fd_param, fd_sets, open_path, parse_add_fd

__all__ = ["FdPassError", "fd_param", "fd_sets", "open_path", "parse_add_fd"]
