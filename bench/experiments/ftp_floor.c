/*
 * The least an FTP server can do for the standard-client benchmark: a thread per connection,
 * blocking calls, no checks. It answers USER and PASS with any name and password, TYPE, PWD,
 * PASV and EPSV (one listener per transfer, as every real server opens), STOR (the data read
 * and written to a file in DIR, no fsync, no rename, no quota), QUIT, and 200 to anything
 * else. It is not a server to run: it exists so that bench/standard_clients.py can measure
 * what the same clients reach on this machine against a server that costs almost nothing
 * ("floor" in docs/BENCHMARKS.md, "Standard clients"). Not part of the build or the tests.
 *
 *   gcc -O2 -pthread -o /tmp/ftp_floor bench/experiments/ftp_floor.c
 *   /tmp/ftp_floor DIR            # prints its port, then serves 127.0.0.1 until killed
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *dir;

static void reply(int fd, const char *text) {
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        /* the client went away: its next read ends the session */
    }
}

/* A listener on 127.0.0.1 with a port of the kernel's choosing; returns it and its port. */
static int passive_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

static void store(int control, int listener, const char *name) {
    char path[4096], buffer[65536];
    reply(control, "150 ok\r\n");
    int data = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t got;
    while (data >= 0 && (got = read(data, buffer, sizeof buffer)) > 0) {
        if (file >= 0 && write(file, buffer, got) != got) break;
    }
    if (file >= 0) close(file);
    if (data >= 0) close(data);
    reply(control, data >= 0 && file >= 0 ? "226 ok\r\n" : "451 failed\r\n");
}

static void *session(void *arg) {
    int control = (int)(long)arg, listener = -1, one = 1;
    char line[4096];
    size_t have = 0;
    setsockopt(control, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    reply(control, "220 floor\r\n");
    for (;;) {
        char *end = memchr(line, '\n', have);
        if (!end) {
            ssize_t got = have < sizeof line ? read(control, line + have, sizeof line - have) : 0;
            if (got <= 0) break;
            have += got;
            continue;
        }
        *end = 0;
        if (end > line && end[-1] == '\r') end[-1] = 0;
        char *argument = strchr(line, ' ');
        argument = argument ? argument + 1 : "";
        char out[128];
        int port;
        if (!strncasecmp(line, "USER", 4)) {
            reply(control, "331 password\r\n");
        } else if (!strncasecmp(line, "PASS", 4)) {
            reply(control, "230 in\r\n");
        } else if (!strncasecmp(line, "PWD", 3)) {
            reply(control, "257 \"/\"\r\n");
        } else if (!strncasecmp(line, "PASV", 4) || !strncasecmp(line, "EPSV", 4)) {
            if (listener >= 0) close(listener);
            listener = passive_listener(&port);
            if (listener < 0)
                snprintf(out, sizeof out, "425 no port\r\n");
            else if (!strncasecmp(line, "PASV", 4))
                snprintf(out, sizeof out, "227 passive (127,0,0,1,%d,%d)\r\n", port >> 8, port & 255);
            else
                snprintf(out, sizeof out, "229 passive (|||%d|)\r\n", port);
            reply(control, out);
        } else if (!strncasecmp(line, "STOR", 4) && listener >= 0 && !strchr(argument, '/')) {
            store(control, listener, argument);
            close(listener);
            listener = -1;
        } else if (!strncasecmp(line, "QUIT", 4)) {
            reply(control, "221 bye\r\n");
            break;
        } else {
            reply(control, "200 ok\r\n");
        }
        have -= end + 1 - line;
        memmove(line, end + 1, have);
    }
    if (listener >= 0) close(listener);
    close(control);
    return NULL;
}

int main(int argc, char **argv) {
    int port, one = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    int listener = passive_listener(&port);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || listen(listener, 1024) < 0) {
        perror("listen");
        return 1;
    }
    printf("%d\n", port);
    fflush(stdout);
    for (;;) {
        int control = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        pthread_t thread;
        if (control < 0) continue;
        if (pthread_create(&thread, NULL, session, (void *)(long)control) != 0) {
            close(control);
            continue;
        }
        pthread_detach(thread);
    }
}
