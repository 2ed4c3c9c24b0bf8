/* The machine's floor for starting many runs at once: 100 posix_spawn() calls of one
 * program from C, no Python, no logging. Compare with bench_apply.py latency.
 *
 *     cc -O2 -o /tmp/spawn_floor bench/spawn_floor.c && /tmp/spawn_floor /usr/bin/date
 */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    char *program = argc > 1 ? argv[1] : "/usr/bin/date";
    char *args[] = {program, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", 1, 0);
    pid_t pids[100];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 100; i++)
        if (posix_spawn(&pids[i], program, &actions, NULL, args, environ) != 0)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (int i = 0; i < 100; i++)
        waitpid(pids[i], NULL, 0);
    printf("%s: 100 posix_spawn calls from C in %.1f ms\n", program,
           (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
    return 0;
}
