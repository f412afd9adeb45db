//! The shell's command line as words: quoting and escapes, the pattern form of each word (in
//! which a quoted or escaped wildcard stays literal), and `~` for the home on either side.

use std::path::PathBuf;

use crate::wildcards::has_wildcard;

/// One word of a command line: its text, and the same as a wildcard pattern, in which every
/// wildcard character that was quoted or escaped is escaped with `\` (it matches only itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub pattern: String,
}

impl Word {
    /// Does the word hold a wildcard the user left unquoted?
    pub fn is_pattern(&self) -> bool {
        has_wildcard(&self.pattern)
    }

    fn push(&mut self, c: char, literal: bool) {
        self.text.push(c);
        if literal && matches!(c, '*' | '?' | '[' | '\\') {
            self.pattern.push('\\');
        }
        self.pattern.push(c);
    }
}

/// Splits a command line into words; `"..."` and `'...'` group, `\` escapes one character
/// (inside quotes, as a Unix shell does).
pub fn split_words(line: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert_with(Word::default);
            }
            (Some(q), c) if c == q => quote = None,
            // As in a Unix shell: inside '...' a backslash is itself; inside "..." it escapes
            // only `"` and a backslash.
            (Some('\''), c) => current.get_or_insert_with(Word::default).push(c, true),
            (Some(_), '\\') => {
                let escaped = chars.clone().next().filter(|next| matches!(next, '"' | '\\'));
                if escaped.is_some() {
                    chars.next();
                }
                current.get_or_insert_with(Word::default).push(escaped.unwrap_or('\\'), true);
            }
            (None, '\\') => {
                let next = chars.next().ok_or("a line cannot end with \\")?;
                current.get_or_insert_with(Word::default).push(next, true);
            }
            (quote, c) => current.get_or_insert_with(Word::default).push(c, quote.is_some()),
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    words.extend(current);
    Ok(words)
}

/// A remote path with `~` (alone or leading `~/`) read as the home, `/`.
pub(super) fn remote_path(path: &str) -> String {
    match path.strip_prefix('~') {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// A local path with `~` (alone or leading `~/`) read as `$HOME`.
pub(super) fn local_path(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// `word` with a leading `~` read as the home, in its text and its pattern alike.
pub(super) fn remote_word(word: &Word) -> Word {
    Word { text: remote_path(&word.text), pattern: remote_path(&word.pattern) }
}

/// A command's options and operands, as Unix commands take them: a word before `--` that
/// starts with `-` (a lone `-` is a name) holds options, one letter each (`-la`), which must
/// be among `allowed`; `--` ends the options, so `rm -- -x` removes a file named `-x`.
/// Options may come anywhere before `--` (`ls docs -l`). An unknown one is refused with the
/// way to name such a file, rather than taken as a name: `rm -r docs` used to look for a file
/// named `-r`.
pub(super) fn split_options<'a>(
    command: &str,
    allowed: &str,
    words: &'a [Word],
) -> Result<(String, Vec<&'a Word>), String> {
    let (mut letters, mut operands, mut options_ended) = (String::new(), Vec::new(), false);
    for word in words {
        let text = word.text.as_str();
        if options_ended || text.len() < 2 || !text.starts_with('-') {
            operands.push(word);
        } else if text == "--" {
            options_ended = true;
        } else {
            for letter in text[1..].chars() {
                if !allowed.contains(letter) {
                    return Err(format!(
                        "{command}: unknown option -{letter}; a name that starts with - goes after --: {command} -- {text}"
                    ));
                }
                letters.push(letter);
            }
        }
    }
    Ok((letters, operands))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split_words(line).unwrap().into_iter().map(|word| word.text).collect()
    }

    #[test]
    fn splits_words_with_quotes_and_escapes() {
        assert_eq!(texts("put 'my file.txt' \"a b/\""), ["put", "my file.txt", "a b/"]);
        assert_eq!(texts(r"cd a\ b"), ["cd", "a b"]);
        assert_eq!(texts("  ls  "), ["ls"]);
        assert_eq!(texts("mv '' x"), ["mv", "", "x"]);
        assert_eq!(texts(r#"put 'a\nb' "c\d" "e\"f" "g\\h""#), ["put", r"a\nb", r"c\d", "e\"f", r"g\h"]);
        assert!(split_words("cd 'open").is_err());
    }

    #[test]
    fn quoted_or_escaped_wildcards_are_literal() {
        let words = split_words(r#"get *.txt "a*b" c\?d 'e[f'"#).unwrap();
        let patterns: Vec<bool> = words.iter().map(Word::is_pattern).collect();
        assert_eq!(patterns, [false, true, false, false, false]);
        assert_eq!(words[2].text, "a*b");
        assert!(crate::wildcards::matches(&words[2].pattern, "a*b"));
        assert!(!crate::wildcards::matches(&words[2].pattern, "axb"));
    }

    #[test]
    fn a_tilde_is_the_home() {
        assert_eq!(remote_path("~"), "/");
        assert_eq!(remote_path("~/docs"), "/docs");
        assert_eq!(remote_path("~docs"), "~docs", "no other users' homes");
        assert_eq!(remote_path("docs"), "docs");
    }

    #[test]
    fn options_are_split_from_operands_and_unknown_ones_refused() {
        let split = |allowed: &str, line: &str| {
            let words = split_words(line).unwrap();
            split_options("cmd", allowed, &words)
                .map(|(letters, operands)| (letters, operands.iter().map(|word| word.text.clone()).collect::<Vec<_>>()))
        };
        assert_eq!(split("la1", "-la docs").unwrap(), ("la".into(), vec!["docs".into()]));
        assert_eq!(split("la1", "docs -l").unwrap(), ("l".into(), vec!["docs".into()]), "anywhere before --");
        assert_eq!(split("r", "-r - x").unwrap(), ("r".into(), vec!["-".into(), "x".into()]), "a lone - is a name");
        assert_eq!(split("", "-- -x -- y").unwrap(), (String::new(), vec!["-x".into(), "--".into(), "y".into()]));
        assert_eq!(split("", "'' x").unwrap(), (String::new(), vec!["".into(), "x".into()]));
        let refused = split("", "-r docs").unwrap_err();
        assert_eq!(refused, "cmd: unknown option -r; a name that starts with - goes after --: cmd -- -r");
        assert!(split("la1", "-lx").unwrap_err().contains("unknown option -x"));
    }
}
