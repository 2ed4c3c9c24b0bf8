/* The machine's floor for starting many runs at once, measured as bench_apply.py measures
 * the controller: N children `date +%s.%N` started at once, each printing the moment it
 * runs; latency = that moment minus the start of the burst. No Python, no logging.
 *
 *     cc -O2 -o /tmp/spawn_floor bench/spawn_floor.c && /tmp/spawn_floor 100
 *     /tmp/spawn_floor 1      # one child on the second, five times
 *
 * "spawn": posix_spawnp() one after the other, as any supervisor does.
 * "prefork": all children forked beforehand, waiting on a pipe; one write releases them
 * all to exec at once. On a 2-core machine it is no faster: exec, the dynamic loader and
 * date itself are the cost, not the spawning.
 * "on-second": one child, started when the wall clock reaches a whole second after the
 * program slept 2 s, as the controller starts a lone task (a VM is slower right after
 * it idled than in a tight loop).
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void burst(int n, int prefork) {
    char *args[] = {"date", "+%s.%N", NULL};
    int out[2], go[2];
    pid_t *pids = calloc(n, sizeof(pid_t));
    double *lat = calloc(n, sizeof(double));
    if (pipe(out) || pipe(go) || !pids || !lat) exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (prefork) {
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                char c;
                dup2(out[1], 1);
                if (read(go[0], &c, 1) == 1) execvp("date", args);
                _exit(127);
            }
            pids[i] = p;
        }
        usleep(300000);
    }
    double t0 = now();
    if (prefork) {
        char *buf = malloc(n);
        memset(buf, 'g', n);
        if (write(go[1], buf, n) != n) exit(1);
        free(buf);
    } else {
        for (int i = 0; i < n; i++)
            if (posix_spawnp(&pids[i], "date", &fa, NULL, args, environ) != 0) exit(1);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[64];
    int k = 0;
    while (k < n && fgets(line, sizeof line, f)) lat[k++] = (atof(line) - t0) * 1000;
    for (int i = 0; i < n; i++) waitpid(pids[i], NULL, 0);
    fclose(f);
    close(go[0]);
    close(go[1]);
    qsort(lat, k, sizeof(double), cmp);
    printf("%-7s %4d children of date: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           prefork ? "prefork" : "spawn", k, lat[k / 2], lat[(int)((k - 1) * 0.99 + 0.5)], lat[k - 1]);
    free(pids);
    free(lat);
}

static void on_second(void) {
    char *args[] = {"date", "+%s.%N", NULL};
    int out[2];
    if (pipe(out)) exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec at = {now.tv_sec + 2, 0};
    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL);
    pid_t pid;
    if (posix_spawnp(&pid, "date", &fa, NULL, args, environ) != 0) exit(1);
    close(out[1]);
    char line[64] = {0};
    if (read(out[0], line, sizeof line - 1) <= 0) exit(1);
    waitpid(pid, NULL, 0);
    close(out[0]);
    printf("on-second  1 child of date: due-to-exec %.1f ms\n", (atof(line) - at.tv_sec) * 1000);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n == 1) {
        for (int round = 0; round < 5; round++) on_second();
        return 0;
    }
    for (int round = 0; round < 3; round++) {
        burst(n, 0);
        burst(n, 1);
    }
    return 0;
}
