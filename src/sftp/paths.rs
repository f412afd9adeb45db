//! Paths as SFTP clients see them: the home is `/`, and `..` of `/` is `/` (as in a chroot),
//! so `cd ..` at the top stays there. Only `realpath` clamps this way, for the client's idea of
//! where it is; every other request goes through the jail, which refuses a path above the home
//! with error 300.

/// `path` with `..` at the top dropped, from `/` (a relative path is from the home).
pub fn clamped_to_home(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::clamped_to_home;

    #[test]
    fn dot_dot_at_the_top_stays_at_the_top() {
        assert_eq!(clamped_to_home(".."), "/");
        assert_eq!(clamped_to_home("/../../x/./y/.."), "/x");
        assert_eq!(clamped_to_home("a/b/../c"), "/a/c");
        assert_eq!(clamped_to_home(""), "/");
    }
}
