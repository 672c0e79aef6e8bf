//! The sync fd: the one line telling the launching front end whether the container was
//! created (`{"pid":N}`) or why not (`{"error":"..."}`), see `crate::launch`.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

use crate::launch::SyncReply;

/// The write end of the sync pipe, if the monitor was given one.
#[derive(Debug)]
pub struct SyncFd(Option<File>);

impl SyncFd {
    pub fn new(fd: Option<OwnedFd>) -> SyncFd {
        SyncFd(fd.map(File::from))
    }

    /// Reports the container's pid and closes the pipe.
    pub fn report_pid(self, pid: i32) {
        self.send(&SyncReply {
            pid: Some(pid),
            error: None,
        });
    }

    /// Reports a failure and closes the pipe.
    pub fn report_error(self, message: &str) {
        self.send(&SyncReply {
            pid: None,
            error: Some(message.to_owned()),
        });
    }

    fn send(self, reply: &SyncReply) {
        if let Some(mut file) = self.0 {
            if let Ok(mut line) = serde_json::to_vec(reply) {
                line.push(b'\n');
                // The launcher may be gone (killed); nothing to do about it then.
                let _ = file.write_all(&line);
            }
        }
    }
}
