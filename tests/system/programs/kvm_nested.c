/* A KVM user of the smallest kind, for a RISC-V Linux guest that runs KVM itself
 * (tests/system/test_nested_kvm.py): open /dev/kvm, create a VM with 64 KiB of RAM at
 * GUEST_RAM, one vCPU, and run a few guest instructions that
 *   - store a message byte by byte to an unbacked MMIO address (GUEST_UART),
 *   - load a word from MMIO (this program answers it with MMIO_READ_VALUE) and store
 *     it back to another MMIO address (so both directions of MMIO emulation are seen),
 *   - ask the SBI for a system reset (shutdown), which KVM reports as a system event.
 * Every exit is printed as a "KVM-TEST ..." line for the test to check.
 * Build: riscv64-linux-gnu-gcc -static -O2 -o kvm-nested kvm_nested.c */
#include <fcntl.h>
#include <stddef.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_RAM 0x80000000ULL
#define GUEST_RAM_SIZE 0x10000
#define GUEST_UART 0x10000000ULL
#define MMIO_READ_VALUE 0x5a5a1234u

/* The guest's code: position independent, copied to GUEST_RAM. VS-mode starts with
 * satp bare, so its addresses are guest physical ones. */
extern const unsigned char guest_code[], guest_code_end[];
__asm__(
    ".section .rodata\n"
    ".balign 4\n"
    ".option push\n"
    ".option norvc\n"
    "guest_code:\n"
    "  li t0, 0x10000000\n"          /* GUEST_UART */
    "  lla a1, 2f\n"
    "1: lbu t1, 0(a1)\n"
    "  beqz t1, 3f\n"
    "  sb t1, 0(t0)\n"
    "  addi a1, a1, 1\n"
    "  j 1b\n"
    "3: lw t2, 16(t0)\n"              /* MMIO load: the VMM answers */
    "  addi t2, t2, 1\n"
    "  sw t2, 24(t0)\n"               /* MMIO store: MMIO_READ_VALUE + 1 */
    "  li a7, 0x53525354\n"           /* SBI SRST */
    "  li a6, 0\n"                    /* system_reset */
    "  li a0, 0\n"                    /* shutdown */
    "  li a1, 0\n"                    /* no reason */
    "  ecall\n"
    "4: j 4b\n"
    "2: .asciz \"hello from the nested guest\"\n"
    "guest_code_end:\n"
    ".option pop\n"
    ".text\n");

static int kvm_ioctl(int fd, unsigned long request, unsigned long arg, const char *what)
{
    int r = ioctl(fd, request, arg);
    if (r < 0) {
        printf("KVM-TEST FAIL %s: %m\n", what);
        fflush(stdout);
    }
    return r;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        printf("KVM-TEST FAIL open /dev/kvm: %m\n");
        return 1;
    }
    printf("KVM-TEST api-version %d\n", ioctl(kvm, KVM_GET_API_VERSION, 0));
    int vm = kvm_ioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    if (vm < 0)
        return 1;
    unsigned char *ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memcpy(ram, guest_code, (size_t)(guest_code_end - guest_code));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = GUEST_RAM, .memory_size = GUEST_RAM_SIZE,
        .userspace_addr = (uint64_t)(uintptr_t)ram,
    };
    if (kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, (unsigned long)&region,
                  "KVM_SET_USER_MEMORY_REGION") < 0)
        return 1;
    int vcpu = kvm_ioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    if (vcpu < 0)
        return 1;
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                               vcpu, 0);
    uint64_t pc = GUEST_RAM;
    struct kvm_one_reg reg = {
        .id = KVM_REG_RISCV | KVM_REG_SIZE_U64 | KVM_REG_RISCV_CORE
              | KVM_REG_RISCV_CORE_REG(regs.pc),
        .addr = (uint64_t)(uintptr_t)&pc,
    };
    if (kvm_ioctl(vcpu, KVM_SET_ONE_REG, (unsigned long)&reg, "KVM_SET_ONE_REG pc") < 0)
        return 1;
    printf("KVM-TEST vcpu created, entering the guest at 0x%llx\n",
           (unsigned long long)pc);

    char said[64] = "";
    size_t n_said = 0;
    for (int exits = 1; exits <= 200; exits++) {
        if (kvm_ioctl(vcpu, KVM_RUN, 0, "KVM_RUN") < 0)
            return 1;
        switch (run->exit_reason) {
        case KVM_EXIT_MMIO: {
            uint64_t addr = run->mmio.phys_addr;
            if (run->mmio.is_write && addr == GUEST_UART && run->mmio.len == 1) {
                if (n_said + 1 < sizeof said)
                    said[n_said++] = (char)run->mmio.data[0];
                continue;
            }
            uint64_t data = 0;
            if (run->mmio.is_write) {
                memcpy(&data, run->mmio.data, run->mmio.len);
            } else {
                data = MMIO_READ_VALUE;
                memcpy(run->mmio.data, &data, run->mmio.len);
            }
            printf("KVM-TEST exit mmio %s addr=0x%llx len=%u data=0x%llx\n",
                   run->mmio.is_write ? "write" : "read", (unsigned long long)addr,
                   run->mmio.len, (unsigned long long)data);
            break;
        }
        case KVM_EXIT_SYSTEM_EVENT:
            printf("KVM-TEST guest said: %s\n", said);
            printf("KVM-TEST exit system-event type=%u after %d exits\n",
                   run->system_event.type, exits);
            printf("KVM-TEST done\n");
            return 0;
        case KVM_EXIT_RISCV_SBI:
            printf("KVM-TEST exit sbi ext=0x%lx fid=%lu\n", run->riscv_sbi.extension_id,
                   run->riscv_sbi.function_id);
            break;
        default:
            printf("KVM-TEST FAIL exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
    printf("KVM-TEST FAIL too many exits\n");
    return 1;
}
