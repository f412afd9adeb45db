//! Path resolution on arbitrary input: whatever a client sends, the result is either an error
//! or a list of plain names under the home (no `..`, no `.`, no empty name, no NUL, no `/`,
//! no reserved partial name), and its relative form has only normal components.
#![no_main]

use std::path::Component;

use ftp_actor::storage::jail::is_partial_name;
use ftp_actor::storage::{PathLimits, VirtualPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (cwd_text, input) = text.split_once('\u{1}').unwrap_or(("/", &text));
    let limits = PathLimits::default();
    let cwd = VirtualPath::resolve(&VirtualPath::root(), cwd_text, limits).unwrap_or_default();
    let Ok(path) = VirtualPath::resolve(&cwd, input, limits) else { return };
    let relative = path.to_relative();
    assert!(relative.is_relative());
    for component in relative.components() {
        match component {
            Component::Normal(name) => {
                let name = name.to_str().expect("names are UTF-8");
                assert!(!name.is_empty() && name != ".." && !name.contains('\0') && !name.contains('/'));
                assert!(!is_partial_name(name));
                assert!(name.len() <= limits.max_name_bytes);
            }
            Component::CurDir => assert!(path.is_root()),
            other => panic!("{other:?} in {relative:?}"),
        }
    }
    assert!(path.to_string().starts_with('/'));
});
