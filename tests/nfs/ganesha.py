"""Run nfs-ganesha (FSAL VFS, NFSv4) on 127.0.0.1 for one test, and drive libnfs's tools.

Used by tests/mount/test_nfs.py.  Everything lives in a temp dir: the config
(from ganesha.conf.in), the pid file, the log and the NFSv4 recovery state.
ganesha runs in the foreground (-F) as our child, on a private port, so it
never touches a system NFS server and is always stopped at teardown.  rpcbind
is started only if none is running, and stopped again if we started it.

Equivalent kernel-nfsd line for /etc/exports (a FUSE mount needs an fsid):
    MOUNT 127.0.0.1(rw,fsid=1,no_subtree_check,no_root_squash)
"""
import os
import shutil
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, 'ganesha.conf.in')

PACKAGES = {'ganesha.nfsd': 'nfs-ganesha', 'nfs-ls': 'libnfs-utils', 'nfs-cat': 'libnfs-utils',
            'nfs-cp': 'libnfs-utils', 'rpcbind': 'rpcbind'}
FSAL_VFS = ('/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so', '/usr/lib/ganesha/libfsalvfs.so',
            '/usr/lib64/ganesha/libfsalvfs.so')


def find_tool(name):
    for d in ('/usr/sbin', '/sbin', '/usr/bin', '/bin'):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def missing_packages():
    """Debian packages whose programs are absent."""
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if not find_tool(tool)})
    if not any(os.path.exists(p) for p in FSAL_VFS) and 'nfs-ganesha-vfs' not in missing:
        missing.append('nfs-ganesha-vfs')
    return missing


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_open(port, host='127.0.0.1'):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pids_named(name):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/comm') as f:
                if f.read().strip() == name:
                    out.append(int(d))
        except OSError:
            pass
    return out


class Rpcbind:
    """Make sure rpcbind answers on 127.0.0.1:111; remember whether we started it."""

    def __init__(self):
        self.started_pid = None

    def ensure(self):
        """Returns None when rpcbind runs, else the reason it cannot."""
        if port_open(111):
            return None
        exe = find_tool('rpcbind')
        if not exe:
            return 'rpcbind is not installed'
        before = set(pids_named('rpcbind'))
        # -w: warm start if state exists; rpcbind forks into the background itself.
        r = subprocess.run([exe, '-w'], capture_output=True, timeout=10)
        deadline = time.time() + 5
        while time.time() < deadline and not port_open(111):
            time.sleep(0.05)
        if not port_open(111):
            return f'rpcbind could not start (exit {r.returncode}): {r.stderr.decode(errors="replace")}'
        new = set(pids_named('rpcbind')) - before
        self.started_pid = min(new) if new else None
        return None

    def stop(self):
        if self.started_pid:
            try:
                os.kill(self.started_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + 5
            while time.time() < deadline and os.path.exists(f'/proc/{self.started_pid}'):
                time.sleep(0.05)
            self.started_pid = None


class Ganesha:
    """One ganesha.nfsd exporting PATH over NFSv4 on 127.0.0.1:port."""

    def __init__(self, workdir, path):
        self.dir = workdir
        self.path = path
        self.port = free_port()
        self.conf = os.path.join(workdir, 'ganesha.conf')
        self.logpath = os.path.join(workdir, 'ganesha.log')
        self.pidfile = os.path.join(workdir, 'ganesha.pid')
        self.statedir = os.path.join(workdir, 'state')
        self.proc = None
        os.makedirs(self.statedir, exist_ok=True)
        with open(TEMPLATE) as f:
            text = f.read()
        for k, v in {'PORT': str(self.port), 'PATH': path, 'STATEDIR': self.statedir}.items():
            text = text.replace('@' + k + '@', v)
        with open(self.conf, 'w') as f:
            f.write(text)

    def log(self):
        try:
            with open(self.logpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def start(self, timeout=20):
        out = open(os.path.join(self.dir, 'ganesha.out'), 'ab')
        self.proc = subprocess.Popen([find_tool('ganesha.nfsd'), '-F', '-f', self.conf, '-L', self.logpath,
                                      '-p', self.pidfile, '-N', 'NIV_EVENT'],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f'ganesha.nfsd exited {self.proc.returncode}:\n{self.log()[-4000:]}')
            if port_open(self.port):
                r = self.run('nfs-ls', self.url(''), check=False, timeout=5)
                if r.returncode == 0:
                    return self
            time.sleep(0.1)
        raise AssertionError(f'ganesha did not serve the export within {timeout}s:\n{self.log()[-4000:]}')

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def url(self, rel):
        rel = rel.lstrip('/')
        return f'nfs://127.0.0.1{self.path}/{rel}?version=4&nfsport={self.port}'

    def run(self, tool, *args, check=True, timeout=15):
        r = subprocess.run([find_tool(tool)] + list(args), capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f'{tool} {" ".join(args)} exited {r.returncode}: '
                                 f'{r.stderr.decode(errors="replace")}\n{r.stdout.decode(errors="replace")}')
        return r

    def cat(self, rel, check=True):
        r = self.run('nfs-cat', self.url(rel), check=check)
        return r.stdout if check else r

    def ls(self, rel):
        """Names in an NFS directory (nfs-ls prints `mode nlink uid gid size name`)."""
        out = self.run('nfs-ls', self.url(rel)).stdout.decode()
        names = []
        for line in out.splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5] not in ('.', '..'):
                names.append(parts[5])
        return names

    def cp_to(self, local, rel):
        return self.run('nfs-cp', local, self.url(rel))
