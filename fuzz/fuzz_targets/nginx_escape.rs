//! The templater's nginx escaping: any string either is refused or becomes exactly one nginx
//! token that nginx's own tokenizer rules read back as the same string — so no value can end a
//! directive, open or close a block, start a comment or be expanded as a variable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use templater::render::nginx_token;

/// Reads one token the way nginx's config reader does (ngx_conf_read_token): a quoted string
/// with `\"`, `\\`, `\t`, `\r`, `\n` escapes, or a bare word ended by space, `;`, `{`, `}`, `#`.
/// Answers the token's text and what follows it.
fn read_token(s: &str) -> (String, &str) {
    let mut out = String::new();
    if let Some(rest) = s.strip_prefix('"') {
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => return (out, ""),
                },
                '"' => return (out, &rest[i + 1..]),
                c => out.push(c),
            }
        }
        panic!("unterminated quoted string: {s:?}");
    }
    let end = s
        .find(|c: char| c.is_whitespace() || ";{}#\"'".contains(c))
        .unwrap_or(s.len());
    (s[..end].to_string(), &s[end..])
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    match nginx_token(value) {
        Err(_) => assert!(value.contains('$') || value.chars().any(char::is_control)),
        Ok(token) => {
            assert!(!token.contains('$'));
            assert!(!token.chars().any(char::is_control));
            let (read, rest) = read_token(&token);
            assert_eq!(read, value, "token {token:?}");
            assert!(rest.is_empty(), "token {token:?} leaves {rest:?}");
        }
    }
});
