//! `backupctl security encrypt|decrypt [--repo R] IN OUT`: this process opens IN and OUT with
//! its user's own rights and passes the open files to the daemon, which streams between them
//! with the repository's key; no path and no file content goes over the socket.
//!
//! A regular OUT (or one that does not exist yet) is written under a temporary name in its
//! directory and renamed over OUT only when the daemon reported success, after an fsync: a
//! failed or interrupted run leaves OUT as it was. Standard output and other non-regular files
//! (a FIFO, a device) are written in place; a failing decrypt leaves there the verified
//! plaintext of the chunks before the one that failed.

use super::jobs::interrupts;
use super::{Failure, Paths};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::file_crypt::FileCryptView;
use crate::output::Output;
use crate::progress::{bytes, Bar};
use backupd_common::client::ClientError;
use backupd_common::protocol::FileCryptResult;
use clap::Args;
use std::ffi::OsString;
use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct CryptArgs {
    /// Repository whose data key is used (default: the daemon's default repository).
    #[arg(long, add = clap_complete::ArgValueCompleter::new(crate::completion::repositories))]
    pub repo: Option<String>,
    /// The file to read; `-` for standard input.
    #[arg(value_name = "IN", value_hint = clap::ValueHint::FilePath)]
    pub input: PathBuf,
    /// The file to write; `-` for standard output. A regular file is written under a temporary
    /// name beside it and renamed into place only once the whole file succeeded.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
}

/// Where the output goes.
enum Target {
    Stdout(std::io::Stdout),
    /// An existing file that is not a regular one (a FIFO, a device): written in place.
    Direct(File),
    /// A regular file, written as `temp` and renamed over `path` by [`Target::commit`]; dropped
    /// uncommitted, the temporary file is removed.
    Temp {
        file: File,
        temp: PathBuf,
        path: PathBuf,
        committed: bool,
    },
}

impl Target {
    /// Opens OUT. A new file is created `0600` when it will hold plaintext (decrypt), else
    /// `0666` less the umask.
    fn open(path: Option<&Path>, plaintext: bool) -> Result<Self, Failure> {
        let Some(path) = path else {
            return Ok(Self::Stdout(std::io::stdout()));
        };
        let local = |what: &str, e: std::io::Error| {
            Failure::Local(format!("cannot {what} {}: {e}", path.display()))
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Failure::Usage(format!(
                    "OUT {} is a directory; name the file to write",
                    path.display()
                )))
            }
            Ok(m) if !m.is_file() => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| local("open", e))?;
                return Ok(Self::Direct(file));
            }
            _ => {}
        }
        let name = path
            .file_name()
            .ok_or_else(|| Failure::Usage(format!("OUT {} names no file", path.display())))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".backupctl-{}-{stamp:08x}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if plaintext { 0o600 } else { 0o666 })
            .open(&temp)
            .map_err(|e| local("create a temporary file beside", e))?;
        Ok(Self::Temp {
            file,
            temp,
            path: path.to_owned(),
            committed: false,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Stdout(stdout) => stdout.as_fd(),
            Self::Direct(file) | Self::Temp { file, .. } => file.as_fd(),
        }
    }

    fn is_stdout(&self) -> bool {
        matches!(self, Self::Stdout(_))
    }

    /// Makes a temporary file durable and renames it over OUT.
    fn commit(&mut self) -> Result<(), Failure> {
        let Self::Temp {
            file,
            temp,
            path,
            committed,
        } = self
        else {
            return Ok(());
        };
        let local = |what: &str, e: std::io::Error| {
            Failure::Local(format!("cannot {what} {}: {e}", path.display()))
        };
        file.sync_all().map_err(|e| local("flush the data of", e))?;
        std::fs::rename(&*temp, &*path).map_err(|e| local("rename the finished file to", e))?;
        *committed = true;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is done; a directory that cannot be fsynced is not worth failing for.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// What a failed run left at OUT, for the error message.
    fn left(&self) -> &'static str {
        match self {
            Self::Temp { .. } => "OUT was left as it was",
            Self::Stdout(_) | Self::Direct(_) => "",
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Self::Temp {
            temp,
            committed: false,
            ..
        } = self
        {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// `-` means standard input/output.
fn stdio_or(path: &Path, paths: Paths) -> Result<Option<PathBuf>, Failure> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(OsString::from_vec(paths.raw(path)?))))
}

pub async fn run(
    client: &mut Client,
    args: &CryptArgs,
    encrypt: bool,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let input_path = stdio_or(&args.input, paths)?;
    let output_path = stdio_or(&args.output, paths)?;
    if output_path.is_none() && out.is_json() {
        return Err(Failure::Usage(
            "--json prints its result on standard output, where OUT `-` writes; name an OUT file"
                .into(),
        ));
    }
    if output_path.is_none() && encrypt && std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "refusing to write encrypted bytes to a terminal; redirect standard output or name \
             an OUT file"
                .into(),
        ));
    }
    let input = match &input_path {
        None => None,
        Some(p) => Some(
            File::open(p)
                .map_err(|e| Failure::Local(format!("cannot open {}: {e}", p.display())))?,
        ),
    };
    let stdin = std::io::stdin();
    let input_fd = match &input {
        Some(file) => file.as_fd(),
        None => stdin.as_fd(),
    };
    let mut target = Target::open(output_path.as_deref(), !encrypt)?;
    let mut interrupt = interrupts()?;
    let mut bar = Bar::new(true);
    let call = client.file_crypt(encrypt, args.repo.clone(), input_fd, target.fd(), |p| {
        bar.update_bytes(&p)
    });
    let result = tokio::select! {
        result = call => result,
        _ = interrupt.recv() => {
            drop(target);
            bar.finish();
            eprintln!("backupctl: interrupted; the daemon stops as soon as it notices");
            return Ok(ExitCode::Interrupted);
        }
    };
    bar.finish();
    let result = match result {
        Ok(r) => r,
        Err(ClientError::Remote(mut reply)) if !target.left().is_empty() => {
            reply.message = format!("{}; {}", reply.message, target.left());
            return Err(Failure::Client(ClientError::Remote(reply)));
        }
        Err(e) => return Err(e.into()),
    };
    target.commit()?;
    let name = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
    let view = FileCryptView::new(&result, &name(&args.input), &name(&args.output));
    if target.is_stdout() {
        eprintln!("{}", summary(&result, encrypt, args));
    } else {
        out.value(&view, || summary(&result, encrypt, args));
    }
    Ok(ExitCode::Ok)
}

fn summary(r: &FileCryptResult, encrypt: bool, args: &CryptArgs) -> String {
    let secs = (r.elapsed_ms as f64 / 1000.0).max(0.001);
    let (verb, plain) = if encrypt {
        ("sealed", r.bytes_in)
    } else {
        ("opened", r.bytes_out)
    };
    format!(
        "{verb} {} into {} with data-key version {} of repository {}: {} in {} chunk(s), {:.1} s \
         ({}/s)",
        args.input.display(),
        args.output.display(),
        r.key_version,
        r.repo,
        bytes(plain),
        r.chunks,
        secs,
        bytes((plain as f64 / secs) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn in_and_out_are_positional_and_dash_means_stdio() {
        let cli =
            Cli::try_parse_from(["backupctl", "security", "encrypt", "--repo", "r", "-", "o"])
                .expect("parses");
        let crate::cli::Command::Security(crate::cli::SecurityCommand::Encrypt(a)) = cli.command
        else {
            panic!("encrypt");
        };
        assert_eq!(a.repo.as_deref(), Some("r"));
        assert_eq!(stdio_or(&a.input, Paths::default()).expect("in"), None);
        assert_eq!(
            stdio_or(&a.output, Paths::default()).expect("out"),
            Some(PathBuf::from("o"))
        );
    }

    #[test]
    fn an_uncommitted_temporary_file_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.bin");
        std::fs::write(&out, b"old").expect("old");
        let target = Target::open(Some(&out), true).expect("open");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
        drop(target);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert_eq!(std::fs::read(&out).expect("out"), b"old");
        let mut target = Target::open(Some(&out), true).expect("open");
        if let Target::Temp { file, .. } = &mut target {
            use std::io::Write;
            file.write_all(b"new").expect("write");
        }
        target.commit().expect("commit");
        drop(target);
        assert_eq!(std::fs::read(&out).expect("out"), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
