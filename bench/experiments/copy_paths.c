/* The ways to move a file through a loopback TCP connection into tmpfs, timed by the CPU
 * each side spends (getrusage per thread). Used for "Fewer copies on the data path" (under "Tried and not
 * adopted") in docs/BENCHMARKS.md; not part of the build or the tests.
 *
 *   gcc -O2 -o /tmp/copy_paths bench/experiments/copy_paths.c -lpthread
 *   /tmp/copy_paths MODE /dev/shm/big.bin /dev/shm/copy-out.bin
 *
 * The sender reads each 256 KiB chunk and touches every cache line of it (standing in for
 * MD5, which must see every byte), then sends it. The receiver receives each chunk, touches
 * it likewise, and stores it. MODE:
 *   0  read + write, recv + write (what ftp-actor does)
 *   1  read, then sendfile of the same range; recv + write
 *   2  mmap the source and write from the mapping; recv + write
 *   3  read + write; recv into an mmap of the destination (ftruncate first)
 *   4  read + write; recv into an mmap of the destination (fallocate first, populated per chunk)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define CHUNK (256 * 1024)

static int mode;
static const char *destination;
static long size;
static double receiver_cpu;
static volatile unsigned long touched;

static double thread_cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static void touch(const unsigned char *bytes, long len) {
    unsigned long sum = 0;
    for (long i = 0; i < len; i += 64) sum += bytes[i];
    touched += sum;
}

static void recv_exactly(int socket, unsigned char *into, long len) {
    for (long got = 0; got < len;) {
        long n = recv(socket, into + got, len - got, 0);
        if (n <= 0) abort();
        got += n;
    }
}

static void *receive(void *listening) {
    int socket = accept(*(int *)listening, 0, 0);
    int fd = open(destination, O_RDWR | O_CREAT | O_TRUNC, 0644);
    double start = thread_cpu();
    if (mode <= 2) {
        unsigned char *chunk = malloc(CHUNK);
        for (long off = 0; off < size; off += CHUNK) {
            long len = size - off < CHUNK ? size - off : CHUNK;
            recv_exactly(socket, chunk, len);
            touch(chunk, len);
            if (write(fd, chunk, len) != len) abort();
        }
    } else {
        if (mode == 3 ? ftruncate(fd, size) : fallocate(fd, 0, 0, size)) abort();
        unsigned char *map = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) abort();
        for (long off = 0; off < size; off += CHUNK) {
            long len = size - off < CHUNK ? size - off : CHUNK;
            if (mode == 4) madvise(map + off, len, MADV_POPULATE_WRITE);
            recv_exactly(socket, map + off, len);
            touch(map + off, len);
        }
        munmap(map, size);
    }
    receiver_cpu = thread_cpu() - start;
    close(fd);
    close(socket);
    return 0;
}

static void send_all(int socket, const unsigned char *bytes, long len) {
    for (long sent = 0; sent < len;) {
        long n = write(socket, bytes + sent, len - sent);
        if (n <= 0) abort();
        sent += n;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: %s MODE SOURCE DESTINATION\n", argv[0]), 2;
    mode = atoi(argv[1]);
    destination = argv[3];
    int source = open(argv[2], O_RDONLY);
    size = lseek(source, 0, SEEK_END);
    lseek(source, 0, SEEK_SET);

    int listening = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t address_len = sizeof address;
    bind(listening, (void *)&address, sizeof address);
    listen(listening, 1);
    getsockname(listening, (void *)&address, &address_len);
    pthread_t receiver;
    pthread_create(&receiver, 0, receive, &listening);
    int socket_ = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(socket_, (void *)&address, sizeof address)) abort();

    unsigned char *chunk = malloc(CHUNK), *map = 0;
    if (mode == 2) {
        map = mmap(0, size, PROT_READ, MAP_SHARED, source, 0);
        madvise(map, size, MADV_SEQUENTIAL);
    }
    double start = thread_cpu();
    for (long off = 0; off < size; off += CHUNK) {
        long len = size - off < CHUNK ? size - off : CHUNK;
        if (mode == 2) {
            touch(map + off, len);
            send_all(socket_, map + off, len);
            continue;
        }
        if (read(source, chunk, len) != len) abort();
        touch(chunk, len);
        if (mode == 1) {
            off_t from = off;
            for (long sent = 0; sent < len;) {
                long n = sendfile(socket_, source, &from, len - sent);
                if (n <= 0) abort();
                sent += n;
            }
        } else {
            send_all(socket_, chunk, len);
        }
    }
    double sender_cpu = thread_cpu() - start;
    shutdown(socket_, SHUT_WR);
    pthread_join(receiver, 0);
    printf("mode %d sender %.3f receiver %.3f total %.3f\n", mode, sender_cpu, receiver_cpu, sender_cpu + receiver_cpu);
    return 0;
}
