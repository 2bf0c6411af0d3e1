/*
 * The pod sandbox's placeholder process, as registry.k8s.io/pause does it:
 * hold the pod's namespaces open, reap children that get reparented to it
 * (shared process namespace), and exit 0 on SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  /* Blocked signals are only ever taken by sigwait: no handler races. */
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
    perror("pause: sigprocmask");
    return 1;
  }
  if (getpid() != 1) fprintf(stderr, "pause: warning: not pid 1\n");
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
      continue;
    }
    return 0;
  }
}
