//! Parsing a `-tags` template into text and actions, refusing what the subset does not know.

/// Why a `-tags` template cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed action (missing }}}})")]
    Unclosed,
    #[error("empty action {{{{}}}}")]
    Empty,
    #[error("unknown field .{0} (known: .ID .Name .Config.Hostname .Config.Domainname .Config.User .Config.WorkingDir .Config.Image .Config.Labels .Config.Env)")]
    UnknownField(String),
    #[error("unknown function {0:?} (known: index mIndex sIndex toUpper toLower strSlice join split splitIndex replace)")]
    UnknownFunction(String),
    #[error("cannot read {0:?}")]
    BadToken(String),
    #[error("{0} was given arguments of the wrong kind")]
    BadArguments(String),
}

const FIELDS: [&str; 9] = [
    "ID",
    "Name",
    "Config.Hostname",
    "Config.Domainname",
    "Config.User",
    "Config.WorkingDir",
    "Config.Image",
    "Config.Labels",
    "Config.Env",
];
const FUNCTIONS: [&str; 10] = [
    "index",
    "mIndex",
    "sIndex",
    "toUpper",
    "toLower",
    "strSlice",
    "join",
    "split",
    "splitIndex",
    "replace",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Field(Vec<String>),
    Str(String),
    Int(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Value(Arg),
    Call(String, Vec<Arg>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Text(String),
    /// Commands piped into each other (`a | f b`: f gets a as its last argument).
    Action(Vec<Command>),
}

pub fn parse(raw: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let mut inner = &rest[open + 2..];
        if let Some(trimmed) = inner.strip_prefix('-') {
            text = text.trim_end();
            inner = trimmed;
        }
        let close = inner.find("}}").ok_or(TemplateError::Unclosed)?;
        let (mut action, mut after) = (&inner[..close], &inner[close + 2..]);
        if let Some(trimmed) = action.strip_suffix('-') {
            action = trimmed;
            after = after.trim_start();
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        nodes.push(Node::Action(pipeline(action)?));
        rest = after;
    }
    if !rest.is_empty() {
        nodes.push(Node::Text(rest.to_string()));
    }
    Ok(nodes)
}

fn pipeline(action: &str) -> Result<Vec<Command>, TemplateError> {
    let mut commands = Vec::new();
    for part in split_pipes(action) {
        let tokens = tokens(&part)?;
        let Some((first, args)) = tokens.split_first() else {
            return Err(TemplateError::Empty);
        };
        let command = match first {
            Token::Word(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(TemplateError::UnknownFunction(name.clone()));
                }
                let args = args.iter().map(arg).collect::<Result<_, _>>()?;
                Command::Call(name.clone(), args)
            }
            other if args.is_empty() => Command::Value(arg(other)?),
            _ => return Err(TemplateError::BadToken(part.trim().to_string())),
        };
        commands.push(command);
    }
    if commands.is_empty() {
        return Err(TemplateError::Empty);
    }
    Ok(commands)
}

/// Splits on `|` outside string literals.
fn split_pipes(action: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_str = false;
    let mut escaped = false;
    for c in action.chars() {
        match c {
            '"' if !escaped => in_str = !in_str,
            '|' if !in_str => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        escaped = c == '\\' && !escaped;
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

enum Token {
    Word(String),
    Field(String),
    Str(String),
    Int(i64),
}

fn tokens(part: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = part.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => s.extend(chars.next()),
                    Some(c) => s.push(c),
                    None => return Err(TemplateError::BadToken(part.trim().to_string())),
                }
            }
            out.push(Token::Str(s));
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(if let Some(path) = word.strip_prefix('.') {
            Token::Field(path.to_string())
        } else if let Ok(i) = word.parse() {
            Token::Int(i)
        } else if word.chars().all(|c| c.is_ascii_alphanumeric()) {
            Token::Word(word)
        } else {
            return Err(TemplateError::BadToken(word));
        });
    }
    Ok(out)
}

fn arg(token: &Token) -> Result<Arg, TemplateError> {
    match token {
        Token::Field(path) => {
            if !FIELDS.contains(&path.as_str()) {
                return Err(TemplateError::UnknownField(path.clone()));
            }
            Ok(Arg::Field(path.split('.').map(String::from).collect()))
        }
        Token::Str(s) => Ok(Arg::Str(s.clone())),
        Token::Int(i) => Ok(Arg::Int(*i)),
        Token::Word(w) => Err(TemplateError::BadToken(w.clone())),
    }
}
