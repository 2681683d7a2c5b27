#!/usr/bin/python3
"""frozen_count.py PID: the seglam-worker children of daemon PID, counted while it
is stopped.  Prints two lines: the PIDs of the live ones, and of the zombies.

A scan of /proc is not a snapshot: on a store that churns hundreds of workers a
second, a worker evicted (and reaped) after the scan passed it and its successor
started before the scan reaches it are both counted, though never alive together.
Stopped (every thread: kill() returns before a thread running on another core has
taken the signal), the daemon neither reaps nor starts workers, so the count is one
its cap must hold (a spare the mother hands over meanwhile is a start the daemon
had already counted).

Its own process on purpose: a test process that stops the daemon must not also be
the one whose other threads spawn tools (CPython holds its lock across vfork, and a
child closing an inherited file of the mount waits for the stopped daemon).  Only
stat is read of other processes, and cmdline only of the daemon's own children:
reading a process's cmdline takes its mmap lock, which a tool faulting on a file of
the mount holds while the daemon is stopped.
"""
import os
import signal
import sys
import time


def task_states(pid):
    out = []
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{t}/stat') as f:
                out.append(f.read().rsplit(')', 1)[1].split()[0])
        except OSError:
            pass
    return out


def children(pid):
    """(pid, state, comm) of each child of @pid, from /proc/*/stat."""
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                st = f.read()
        except OSError:
            continue
        rest = st.rsplit(')', 1)[1].split()
        if int(rest[1]) == pid:
            yield d, rest[0], st[st.index('(') + 1:st.rindex(')')]


def scan(pid):
    alive, zombies = [], []
    for d, state, comm in children(pid):
        if state == 'Z':
            if comm.startswith('seglam-worker'):
                zombies.append(d)
            continue
        try:
            with open(f'/proc/{d}/cmdline', 'rb') as f:
                argv0 = f.read().split(b'\0')[0]
        except OSError:
            continue
        if argv0.endswith(b'seglam-worker'):
            alive.append(d)
    return alive, zombies


def main():
    pid = int(sys.argv[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        end = time.time() + 5
        while time.time() < end and not all(s in 'tT' for s in task_states(pid)):
            time.sleep(0.0005)
        alive, zombies = scan(pid)
    finally:
        os.kill(pid, signal.SIGCONT)
    print(' '.join(alive))
    print(' '.join(zombies))


if __name__ == '__main__':
    main()
