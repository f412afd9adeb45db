//! File descriptors are a budget too: every connection holds one, a logged-in session a few
//! (its control connection, a data connection and its listener, the file being moved), and
//! running out makes `accept` fail with EMFILE. The server raises its soft limit to the hard
//! limit at start ([`raise_open_files_limit`]) and fits its pre-login budget to what it got
//! ([`fit_prelogin_budget`]).

/// Descriptors a logged-in session may hold at once: its connection, an FTP data connection
/// and its passive listener, the file being transferred, a directory being listed.
pub const PER_SESSION: u64 = 5;

/// Descriptors the server holds whatever its load: listeners, the runtime's epoll and event
/// descriptors, the log, the user store and the digest file while they are read or written,
/// with room to spare.
pub const BASE: u64 = 64;

/// The fewest pre-login places the server keeps, however tight the limit: below this a real
/// client could not get in while anything else waits.
pub const MIN_PRELOGIN: usize = 16;

/// The open-files limits before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit (the soft default of 1024 is a relic of
/// `select`; the server uses epoll). Returns the limits, or the error of `getrlimit`.
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let soft_before = limit.rlim_cur;
    let hard = limit.rlim_max;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct it is given; failing leaves the limit as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(OpenFiles { soft_before, soft: hard, hard });
        }
    }
    Ok(OpenFiles { soft_before, soft: soft_before, hard })
}

/// The pre-login budget that fits in `open_files` descriptors beside `max_concurrency`
/// sessions and `max_queued` waiting ones: the configured budget, or less if it does not fit
/// (never below [`MIN_PRELOGIN`]; past that, EMFILE on accept sheds pre-login connections).
pub fn fit_prelogin_budget(configured: usize, open_files: u64, max_concurrency: usize, max_queued: usize) -> usize {
    let sessions = PER_SESSION * max_concurrency as u64 + max_queued as u64;
    let room = open_files.saturating_sub(BASE + sessions);
    (configured as u64).min(room).max(MIN_PRELOGIN as u64) as usize
}

/// Did `accept` fail because descriptors ran out (the process's or the system's)? Then
/// accepting again at once would fail the same way until one is freed.
pub fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_what_fits_beside_the_sessions() {
        assert_eq!(fit_prelogin_budget(4096, 1 << 20, 10, 10), 4096);
        // 1024 descriptors, 10 sessions (50), 10 queued, 64 kept: 900 left.
        assert_eq!(fit_prelogin_budget(4096, 1024, 10, 10), 900);
        assert_eq!(fit_prelogin_budget(4096, 100, 10, 10), MIN_PRELOGIN);
    }

    #[test]
    fn out_of_descriptors_is_told_from_other_accept_errors() {
        assert!(is_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let limits = raise_open_files_limit().unwrap();
        assert!(limits.soft >= limits.soft_before);
        assert!(limits.soft <= limits.hard);
    }
}
