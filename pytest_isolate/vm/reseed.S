# pytest-isolate guest reseed helper: x86-64 Linux, no libc, position independent.
# Reads /pi/seed (88 bytes: struct timespec, then struct rand_pool_info with
# 64 bytes of entropy), sets CLOCK_REALTIME, credits the entropy to the kernel
# (RNDADDENTROPY) and forces a CRNG reseed (RNDRESEEDCRNG). Exit status: 0, or
# the number of the step that failed (2-7).
    .intel_syntax noprefix
    .text
    .globl _start
_start:
    sub rsp, 256
    mov r13d, 2                 # open("/pi/seed", O_RDONLY)
    mov eax, 2
    lea rdi, [rip + seed_path]
    xor esi, esi
    syscall
    test eax, eax
    js fail
    mov r13d, 3                 # read(fd, rsp, 256) == 88
    mov edi, eax
    xor eax, eax
    mov rsi, rsp
    mov edx, 256
    syscall
    cmp eax, 88
    jne fail
    mov r13d, 4                 # clock_settime(CLOCK_REALTIME, rsp)
    mov eax, 227
    xor edi, edi
    mov rsi, rsp
    syscall
    test eax, eax
    jnz fail
    mov r13d, 5                 # open("/dev/urandom", O_WRONLY)
    mov eax, 2
    lea rdi, [rip + urandom_path]
    mov esi, 1
    syscall
    test eax, eax
    js fail
    mov r12d, eax
    mov r13d, 6                 # ioctl(fd, RNDADDENTROPY, rsp + 16)
    mov eax, 16
    mov edi, r12d
    mov esi, 0x40085203
    lea rdx, [rsp + 16]
    syscall
    test eax, eax
    jnz fail
    mov r13d, 7                 # ioctl(fd, RNDRESEEDCRNG)
    mov eax, 16
    mov edi, r12d
    mov esi, 0x5207
    xor edx, edx
    syscall
    test eax, eax
    jnz fail
    xor r13d, r13d
fail:
    mov eax, 60                 # exit(r13)
    mov edi, r13d
    syscall
seed_path:
    .asciz "/pi/seed"
urandom_path:
    .asciz "/dev/urandom"
