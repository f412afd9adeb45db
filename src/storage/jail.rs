//! Paths as users see them: absolute inside their home, `/` being the home itself.
//!
//! [`VirtualPath::resolve`] turns what a user typed into a normalized list of names, lexically,
//! with no filesystem access: `.` is dropped, `..` pops a name and is refused above the home,
//! a leading `/` starts at the home. It also refuses NUL bytes, overlong paths and names, and
//! the names reserved for partial uploads. This is the first of two walls: the second is that
//! every filesystem call goes through a cap-std [`cap_std::fs::Dir`] for the home, which refuses
//! symlinks leading out at the moment of use (no check-then-use race).

use std::path::PathBuf;

/// Suffix of the hidden files that hold uploads in progress; such names cannot be used.
pub const PARTIAL_SUFFIX: &str = ".ftpa-part";

/// Bounds on what a user may type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathLimits {
    /// Longest accepted path as typed, in bytes.
    pub max_path_bytes: usize,
    /// Longest accepted name (one component), in bytes. Keep it at least 11 below the
    /// filesystem's 255 so the partial file's name (`.NAME.ftpa-part`) still fits.
    pub max_name_bytes: usize,
}

impl Default for PathLimits {
    fn default() -> Self {
        PathLimits { max_path_bytes: 4096, max_name_bytes: 240 }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JailError {
    #[error("the path goes above your home directory")]
    AboveHome,
    #[error("the path contains a control character (a newline, a tab, NUL, ...)")]
    ControlCharacter,
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {0} bytes")]
    PathTooLong(usize),
    #[error("a name in the path is longer than {0} bytes")]
    NameTooLong(usize),
    #[error("names ending in {PARTIAL_SUFFIX} are reserved for partial uploads")]
    Reserved,
}

/// A normalized path inside a home: a list of names, none of them `.`, `..` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VirtualPath {
    names: Vec<String>,
}

/// The one rule for names, on every front end and in the client: what a single name in a home
/// may be. Not empty, `.` or `..`; no `/` and no control character (a newline would split an
/// FTP listing line, and terminals act on the rest); not a partial's reserved name. A
/// backslash is an ordinary character here, on the way up and down.
pub fn is_ordinary_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
        && !is_partial_name(name)
}

impl VirtualPath {
    /// The home itself.
    pub fn root() -> VirtualPath {
        VirtualPath::default()
    }

    /// Resolves `input` relative to `cwd` (or to the home if it starts with `/`).
    pub fn resolve(cwd: &VirtualPath, input: &str, limits: PathLimits) -> Result<VirtualPath, JailError> {
        if input.is_empty() {
            return Err(JailError::Empty);
        }
        if input.len() > limits.max_path_bytes {
            return Err(JailError::PathTooLong(limits.max_path_bytes));
        }
        if input.chars().any(char::is_control) {
            return Err(JailError::ControlCharacter);
        }
        let mut names = if input.starts_with('/') { Vec::new() } else { cwd.names.clone() };
        for name in input.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    names.pop().ok_or(JailError::AboveHome)?;
                }
                name if name.len() > limits.max_name_bytes => {
                    return Err(JailError::NameTooLong(limits.max_name_bytes));
                }
                name if name.ends_with(PARTIAL_SUFFIX) => return Err(JailError::Reserved),
                name => names.push(name.to_string()),
            }
        }
        Ok(VirtualPath { names })
    }

    /// A path as [`VirtualPath`]'s `Display` wrote it (`/a/b`), read back from where the server
    /// stored it (never from a client: [`VirtualPath::resolve`] checks those).
    pub fn from_stored(path: &str) -> VirtualPath {
        VirtualPath { names: path.split('/').filter(|name| !name.is_empty()).map(str::to_string).collect() }
    }

    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// The last name, `None` for the home.
    pub fn file_name(&self) -> Option<&str> {
        self.names.last().map(String::as_str)
    }

    /// The containing directory (the home for the home).
    pub fn parent(&self) -> VirtualPath {
        let mut names = self.names.clone();
        names.pop();
        VirtualPath { names }
    }

    /// A sibling with another last name (used for the partial file).
    pub fn with_file_name(&self, name: &str) -> VirtualPath {
        let mut path = self.parent();
        path.names.push(name.to_string());
        path
    }

    /// The entry `name` inside this directory (`name` is one ordinary name, read from disk).
    pub fn child(&self, name: &str) -> VirtualPath {
        let mut path = self.clone();
        path.names.push(name.to_string());
        path
    }

    /// The hidden partial file that receives uploads to this path.
    pub fn partial(&self) -> Option<VirtualPath> {
        self.file_name().map(|name| self.with_file_name(&format!(".{name}{PARTIAL_SUFFIX}")))
    }

    /// The relative filesystem path to hand to the home's `Dir` (`.` for the home).
    pub fn to_relative(&self) -> PathBuf {
        if self.names.is_empty() { PathBuf::from(".") } else { self.names.iter().collect() }
    }

    /// True if `self` is `other` or inside it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        self.names.starts_with(&other.names)
    }
}

impl std::fmt::Display for VirtualPath {
    /// `/` for the home, `/a/b` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.names.is_empty() {
            return f.write_str("/");
        }
        for name in &self.names {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

/// True for the names of partial files, which are never downloaded, nor listed under their
/// own name (a listing shows one under the name it will be published as).
pub fn is_partial_name(name: &str) -> bool {
    name.ends_with(PARTIAL_SUFFIX)
}

/// The name a partial file (`.NAME.ftpa-part`) will be published as: `NAME`. `None` for any
/// other name.
pub fn published_name(partial_name: &str) -> Option<&str> {
    partial_name.strip_prefix('.')?.strip_suffix(PARTIAL_SUFFIX).filter(|name| is_ordinary_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(cwd: &str, input: &str) -> Result<String, JailError> {
        let limits = PathLimits::default();
        let cwd = VirtualPath::resolve(&VirtualPath::root(), cwd, limits).unwrap();
        VirtualPath::resolve(&cwd, input, limits).map(|p| p.to_string())
    }

    #[test]
    fn normalizes_relative_absolute_and_dots() {
        assert_eq!(resolve("/", "a/b").unwrap(), "/a/b");
        assert_eq!(resolve("/a", "b/../c/./d").unwrap(), "/a/c/d");
        assert_eq!(resolve("/a/b", "..").unwrap(), "/a");
        assert_eq!(resolve("/a/b", "/").unwrap(), "/");
        assert_eq!(resolve("/a/b", "/x//y/").unwrap(), "/x/y");
        assert_eq!(resolve("/a", "../../../etc/passwd"), Err(JailError::AboveHome));
        assert_eq!(resolve("/", ".."), Err(JailError::AboveHome));
        assert_eq!(resolve("/a", "b/../../.."), Err(JailError::AboveHome));
    }

    #[test]
    fn absolute_host_paths_stay_inside_the_home() {
        let p = resolve("/", "/etc/passwd").unwrap();
        assert_eq!(p, "/etc/passwd");
        let vp = VirtualPath::resolve(&VirtualPath::root(), "/etc/passwd", PathLimits::default()).unwrap();
        assert_eq!(vp.to_relative(), PathBuf::from("etc/passwd"));
        assert!(vp.to_relative().is_relative());
    }

    #[test]
    fn refuses_nul_overlong_reserved_and_empty() {
        assert_eq!(resolve("/", "a\0b"), Err(JailError::ControlCharacter));
        for control in ["line\nbreak", "tab\there", "bell\u{7}", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(resolve("/", control), Err(JailError::ControlCharacter), "{control:?}");
        }
        assert_eq!(resolve("/", "back\\slash"), Ok("/back\\slash".into()), "a backslash is an ordinary character");
        assert_eq!(resolve("/", ""), Err(JailError::Empty));
        assert_eq!(resolve("/", &"a/".repeat(3000)), Err(JailError::PathTooLong(4096)));
        assert_eq!(resolve("/", &"n".repeat(241)), Err(JailError::NameTooLong(240)));
        assert_eq!(resolve("/", ".x.ftpa-part"), Err(JailError::Reserved));
    }

    #[test]
    fn partial_names() {
        let vp = VirtualPath::resolve(&VirtualPath::root(), "d/file.bin", PathLimits::default()).unwrap();
        assert_eq!(vp.partial().unwrap().to_string(), "/d/.file.bin.ftpa-part");
        assert!(VirtualPath::root().partial().is_none());
        assert_eq!(published_name(".file.bin.ftpa-part"), Some("file.bin"));
        assert_eq!(published_name("..ftpa-part"), None, "no name to publish as");
        assert_eq!(published_name("file.bin"), None);
    }

    proptest! {
        /// No generated path resolves to anything but plain names under the home.
        #[test]
        fn never_escapes(cwd in proptest::collection::vec("[a-z.]{1,3}", 0..4),
                         parts in proptest::collection::vec(prop_oneof![
                             Just("..".to_string()), Just(".".to_string()), Just("".to_string()),
                             Just("/".to_string()), "[a-z./\\\\]{1,6}", ".{0,8}"], 0..12)) {
            let limits = PathLimits::default();
            let cwd = VirtualPath::resolve(&VirtualPath::root(), &format!("/{}", cwd.join("/")), limits);
            let cwd = match cwd { Ok(c) => c, Err(_) => VirtualPath::root() };
            if let Ok(path) = VirtualPath::resolve(&cwd, &parts.join("/"), limits) {
                let relative = path.to_relative();
                prop_assert!(relative.is_relative());
                for component in relative.components() {
                    let ok = matches!(component, std::path::Component::Normal(_))
                        || (path.is_root() && component == std::path::Component::CurDir);
                    prop_assert!(ok, "{:?} in {:?}", component, relative);
                }
                for name in &path.names {
                    prop_assert!(!name.is_empty() && name != "." && name != ".." && !name.contains('/'));
                    prop_assert!(!name.contains('\0') && !is_partial_name(name));
                }
            }
        }
    }
}
