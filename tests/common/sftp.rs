//! Driving OpenSSH's `sftp` and `scp` against a test server: a password given through
//! `SSH_ASKPASS` (no terminal needed), the server's host key pinned in a known-hosts file of
//! the test's own (strict checking: a changed key fails the test), no user configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::TestServer;

pub struct OpenSsh {
    pub port: u16,
    pub user: String,
    askpass: PathBuf,
    /// `sftp -b` puts ssh in batch mode, which rules out password logins: this wrapper drops
    /// that one option (the server offers passwords only, for now).
    ssh_wrapper: PathBuf,
    pub known_hosts: PathBuf,
}

impl OpenSsh {
    pub fn new(test: &TestServer, user: &str, password: &str) -> OpenSsh {
        OpenSsh::at(&test.dir.path().join("openssh"), test.data_dir(), test.sftp_addr().port(), user, password)
    }

    /// For a server whose files are in `data_dir` (its host key) and whose SFTP listener is on
    /// 127.0.0.1:`port`; the client's files go in `dir`.
    pub fn at(dir: &Path, data_dir: &Path, port: u16, user: &str, password: &str) -> OpenSsh {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let askpass = dir.join("askpass.sh");
        let quoted = password.replace('\'', r"'\''");
        write_script(&askpass, &format!("#!/bin/sh\nprintf '%s\\n' '{quoted}'\n"));
        let ssh_wrapper = dir.join("ssh-password.sh");
        write_script(
            &ssh_wrapper,
            "#!/bin/sh\nfor arg; do shift; [ \"$arg\" = \"-obatchmode yes\" ] || set -- \"$@\" \"$arg\"; done\nexec ssh \"$@\"\n",
        );
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {}\n", host_public_key_in(data_dir))).unwrap();
        OpenSsh { port, user: user.to_string(), askpass, ssh_wrapper, known_hosts }
    }

    /// The options every OpenSSH client gets here.
    fn options(&self) -> Vec<String> {
        let mut options = Vec::new();
        for option in [
            "BatchMode=no".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "PreferredAuthentications=password".to_string(),
            "NumberOfPasswordPrompts=1".to_string(),
        ] {
            options.push("-o".to_string());
            options.push(option);
        }
        options
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("timeout");
        command
            .arg("120")
            .arg(program)
            .arg("-F")
            .arg("/dev/null")
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(std::process::Stdio::null());
        command
    }

    /// `sftp -b` with these commands, one per line; the batch stops at the first failure.
    pub fn sftp_command(&self, commands: &str, extra: &[&str]) -> Command {
        let batch = self.askpass.with_file_name(format!("batch-{}", rand_suffix()));
        std::fs::write(&batch, commands).unwrap();
        let mut command = self.command("sftp");
        command.arg("-S").arg(&self.ssh_wrapper).args(self.options()).arg("-P").arg(self.port.to_string());
        command.args(extra).arg("-b").arg(&batch).arg(format!("{}@127.0.0.1", self.user));
        command
    }

    /// `sftp -b` logging in with the private key `identity` only (no password: batch mode as
    /// `sftp -b` wants it).
    pub fn sftp_with_key(&self, identity: &Path, commands: &str) -> Output {
        let batch = self.askpass.with_file_name(format!("batch-{}", rand_suffix()));
        std::fs::write(&batch, commands).unwrap();
        let mut command = self.command("sftp");
        for option in self.options() {
            let option = option.replace("PreferredAuthentications=password", "PreferredAuthentications=publickey");
            command.arg(option);
        }
        command.args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i"]).arg(identity);
        command.arg("-P").arg(self.port.to_string()).arg("-b").arg(&batch).arg(format!("{}@127.0.0.1", self.user));
        command.output().expect("cannot run sftp (openssh-client)")
    }

    /// `ssh` running `remote_command` on the server (only `md5sum` is offered there).
    pub fn ssh(&self, remote_command: &str) -> Output {
        let mut command = self.command("ssh");
        command.args(self.options()).arg("-p").arg(self.port.to_string());
        command.arg(format!("{}@127.0.0.1", self.user)).arg(remote_command);
        command.output().expect("cannot run ssh (openssh-client)")
    }

    /// An interactive `sftp` (no batch file, so no batch mode): commands go to its standard
    /// input, one per line, while it runs.
    pub fn sftp_interactive(&self) -> std::process::Child {
        let mut command = self.command("sftp");
        command.args(self.options()).arg("-P").arg(self.port.to_string()).arg(format!("{}@127.0.0.1", self.user));
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().expect("cannot run sftp (openssh-client)")
    }

    pub fn sftp(&self, commands: &str) -> Output {
        self.sftp_command(commands, &[]).output().expect("cannot run sftp (openssh-client)")
    }

    /// `scp` (which speaks SFTP in OpenSSH 9) with these arguments; `remote:` in an argument
    /// names the server.
    pub fn scp(&self, args: &[&str]) -> Output {
        let mut command = self.command("scp");
        command.args(self.options()).arg("-P").arg(self.port.to_string());
        let remote = format!("{}@127.0.0.1:", self.user);
        command.args(args.iter().map(|arg| arg.replace("remote:", &remote)));
        command.output().expect("cannot run scp (openssh-client)")
    }
}

/// A new key pair made by ssh-keygen in `dir`: the private key's path (the public one is
/// beside it, `.pub`).
pub fn new_key(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(name);
    let output = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", kind, "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(output.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&output.stderr));
    path
}

/// The server's host public key, as a known-hosts line's key part.
pub fn host_public_key(test: &TestServer) -> String {
    host_public_key_in(test.data_dir())
}

/// The public half of the host key the server generated in `data_dir`.
pub fn host_public_key_in(data_dir: &Path) -> String {
    let key = data_dir.join(ftp_actor::sftp::GENERATED_HOST_KEY);
    let output = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key).output().expect("ssh-keygen runs");
    assert!(output.status.success(), "ssh-keygen -y: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
