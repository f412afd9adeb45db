//! Shell wildcards: `*` any run of characters, `?` one character, `[abc]`, `[a-z]` and `[!abc]`
//! one character of (or not of) a set, `\` taking the next character as itself. As in a Unix
//! shell, a wildcard does not match a leading `.`, so `*` leaves hidden names out; and patterns
//! are matched in the last name of a path only (`docs/*.txt`, not `*/notes.txt`). The shell
//! expands them itself (the native protocol never carries a pattern); FTP's NLST and LIST
//! expand them on the server, for clients that send `NLST *.txt` (the classic `ftp`'s `mget`).

/// Does `text` hold a wildcard character (one not escaped by `\`)?
pub fn has_wildcard(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Does `name` match `pattern` (see the module doc)?
pub fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches_from(&pattern, &name)
}

fn matches_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| matches_from(rest, &name[skip..])),
        Some((&first, rest)) => {
            let Some((&c, name_rest)) = name.split_first() else { return false };
            match first {
                '?' => matches_from(rest, name_rest),
                '[' => match set_match(rest, c) {
                    Some((true, after)) => matches_from(after, name_rest),
                    Some((false, _)) => false,
                    // No closing `]`: the `[` is itself.
                    None => c == '[' && matches_from(rest, name_rest),
                },
                '\\' => match rest.split_first() {
                    Some((&escaped, after)) => c == escaped && matches_from(after, name_rest),
                    None => c == '\\',
                },
                literal => c == literal && matches_from(rest, name_rest),
            }
        }
    }
}

/// Matches `c` against the set that starts at `set` (just after its `[`); returns whether it
/// is in it and the pattern after the `]`, or `None` if the set is not closed.
fn set_match(set: &[char], c: char) -> Option<(bool, &[char])> {
    let (negated, mut at) = match set.first() {
        Some('!' | '^') => (true, 1),
        _ => (false, 0),
    };
    let mut found = false;
    let mut first = true;
    while at < set.len() {
        let member = set[at];
        if member == ']' && !first {
            return Some((found != negated, &set[at + 1..]));
        }
        first = false;
        if set.get(at + 1) == Some(&'-') && set.get(at + 2).is_some_and(|&end| end != ']') {
            found |= (member..=set[at + 2]).contains(&c);
            at += 3;
        } else {
            found |= member == c;
            at += 1;
        }
    }
    None
}

/// `\x` read as `x`: a pattern's (or a typed word's) text as names.
pub fn unescape(text: &str) -> String {
    let mut name = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        name.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
    }
    name
}

/// Splits a path whose last name is a pattern into the directory to list (`None`: the working
/// directory) and the pattern; refuses wildcards before the last name.
pub fn split_pattern(path: &str) -> Result<(Option<&str>, &str), String> {
    let (dir, pattern) = match path.rfind('/') {
        Some(0) => (Some("/"), &path[1..]),
        Some(at) => (Some(&path[..at]), &path[at + 1..]),
        None => (None, path),
    };
    if dir.is_some_and(has_wildcard) {
        return Err(format!("{path}: wildcards are matched in the last name of a path only"));
    }
    Ok((dir, pattern))
}

/// `dir` joined with `name`, as the user would have typed it (`name` alone when `dir` is the
/// working directory).
pub fn join(dir: Option<&str>, name: &str) -> String {
    match dir {
        None => name.to_string(),
        Some("/") => format!("/{name}"),
        Some(dir) => format!("{dir}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stars_questions_and_sets() {
        assert!(matches("*.txt", "notes.txt") && !matches("*.txt", "notes.txt.bak"));
        assert!(matches("a?c", "abc") && !matches("a?c", "ac"));
        assert!(matches("[ab]*", "beta") && !matches("[ab]*", "gamma"));
        assert!(matches("f[0-9].bin", "f7.bin") && !matches("f[0-9].bin", "fx.bin"));
        assert!(matches("[!a]*", "beta") && !matches("[!a]*", "alpha"));
        assert!(matches("[]]x", "]x"), "a ] first in a set is a member");
        assert!(matches("a[b", "a[b"), "an unclosed [ is itself");
        assert!(matches(r"\*", "*") && !matches(r"\*", "x"));
        assert!(matches("*", "") && matches("**", "anything"));
        assert!(matches("r?sum?", "résumé"), "characters, not bytes");
    }

    #[test]
    fn hidden_names_need_an_explicit_dot() {
        assert!(!matches("*", ".hidden") && !matches("?hidden", ".hidden"));
        assert!(matches(".*", ".hidden") && matches(".h*", ".hidden"));
    }

    #[test]
    fn wildcards_are_found_unless_escaped() {
        assert!(has_wildcard("*.txt") && has_wildcard("a?") && has_wildcard("[ab]"));
        assert!(!has_wildcard("plain.txt") && !has_wildcard(r"a\*b"));
    }

    #[test]
    fn patterns_split_at_the_last_name() {
        assert_eq!(split_pattern("*.txt"), Ok((None, "*.txt")));
        assert_eq!(split_pattern("/*.txt"), Ok((Some("/"), "*.txt")));
        assert_eq!(split_pattern("docs/a*"), Ok((Some("docs"), "a*")));
        assert!(split_pattern("*/notes.txt").is_err());
        assert_eq!(join(Some("docs"), "a"), "docs/a");
        assert_eq!(join(Some("/"), "a"), "/a");
        assert_eq!(join(None, "a"), "a");
    }

    proptest! {
        /// A name with no wildcard characters matches itself as a pattern, and `*` matches
        /// every name that does not start with a dot.
        #[test]
        fn plain_names_match_themselves(name in "[a-z0-9 ._-]{0,12}") {
            prop_assert!(matches(&name, &name));
            prop_assert_eq!(matches("*", &name), !name.starts_with('.'));
        }
    }
}
