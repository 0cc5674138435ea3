//! `-tags` as gliderlabs reads it: a Go template rendered per container over its inspect data.
//! A subset: text, `{{.Field.Path}}` over `.ID`, `.Name`, `.Config.*` (labels and env included),
//! pipelines, string literals and integers, and gliderlabs' helper functions that need no
//! network (`index`, `mIndex`, `sIndex`, `toUpper`, `toLower`, `strSlice`, `join`, `split`,
//! `splitIndex`, `replace`). A template using anything else is refused at start-up (exit 64).

mod parse;

use std::collections::BTreeMap;

use crate::container::ContainerInfo;
pub use parse::TemplateError;
use parse::{Arg, Command, Node};

/// A checked `-tags` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagTemplate {
    nodes: Vec<Node>,
}

/// A value inside the template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(i64),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl Value {
    fn print(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::List(l) => format!("[{}]", l.join(" ")),
            Value::Map(m) => {
                let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", pairs.join(" "))
            }
        }
    }
}

impl TagTemplate {
    /// Parses and checks `raw`: every field and function must be one this subset knows.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        Ok(TagTemplate {
            nodes: parse::parse(raw)?,
        })
    }

    /// True when the template is plain text (no action at all).
    pub fn is_literal(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, Node::Text(_)))
    }

    /// Renders over `c`. Checked at parse time, so only a type mismatch (e.g. `toUpper` of a
    /// list) can fail; that prints nothing for the action, as the check says where.
    pub fn render(&self, c: &ContainerInfo) -> Result<String, TemplateError> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipeline) => {
                    let mut last: Option<Value> = None;
                    for cmd in pipeline {
                        last = Some(eval(cmd, last, c)?);
                    }
                    if let Some(v) = last {
                        out.push_str(&v.print());
                    }
                }
            }
        }
        Ok(out)
    }
}

fn field(path: &[String], c: &ContainerInfo) -> Value {
    let s = |v: &str| Value::Str(v.to_string());
    match path
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ID"] => s(&c.id.0),
        ["Name"] => Value::Str(format!("/{}", c.name)),
        ["Config", "Hostname"] => s(&c.config.hostname),
        ["Config", "Domainname"] => s(&c.config.domainname),
        ["Config", "User"] => s(&c.config.user),
        ["Config", "WorkingDir"] => s(&c.config.working_dir),
        ["Config", "Image"] => s(&c.image),
        ["Config", "Labels"] => Value::Map(c.labels.clone()),
        ["Config", "Env"] => Value::List(c.env.clone()),
        _ => unreachable!("fields are checked at parse time"),
    }
}

fn eval(cmd: &Command, piped: Option<Value>, c: &ContainerInfo) -> Result<Value, TemplateError> {
    let value = |a: &Arg| match a {
        Arg::Field(path) => field(path, c),
        Arg::Str(s) => Value::Str(s.clone()),
        Arg::Int(i) => Value::Int(*i),
    };
    match cmd {
        Command::Value(a) => Ok(value(a)),
        Command::Call(name, args) => {
            let mut args: Vec<Value> = args.iter().map(value).collect();
            args.extend(piped);
            call(name, &args).ok_or_else(|| TemplateError::BadArguments(name.clone()))
        }
    }
}

fn pick<T: Clone>(items: &[T], i: i64) -> Option<T> {
    let n = items.len() as i64;
    if n == 0 {
        return None;
    }
    let at = if i < 0 { (n + i).max(0) } else { i.min(n - 1) };
    items.get(at as usize).cloned()
}

fn call(name: &str, args: &[Value]) -> Option<Value> {
    use Value::{Int, List, Map, Str};
    let str_of = |s: &str| Some(Str(s.to_string()));
    match (name, args) {
        ("index", [Map(m), Str(k)]) | ("mIndex", [Str(k), Map(m)]) => {
            str_of(m.get(k).map_or("", String::as_str))
        }
        ("index", [List(l), Int(i)]) if *i >= 0 => {
            str_of(l.get(*i as usize).map_or("", String::as_str))
        }
        ("sIndex", [Int(i), List(l)]) => Some(Str(pick(l, *i).unwrap_or_default())),
        ("toUpper", [Str(s)]) => Some(Str(s.to_uppercase())),
        ("toLower", [Str(s)]) => Some(Str(s.to_lowercase())),
        ("strSlice", [Str(s), Int(i)]) => Some(Str(s.get(*i as usize..).unwrap_or(s).to_string())),
        ("strSlice", [Str(s), Int(i), Int(j)]) => {
            let (i, j) = (*i as usize, *j as usize);
            Some(Str(s.get(i..j.max(i)).unwrap_or(s).to_string()))
        }
        ("join", [Str(sep), List(l)]) => Some(Str(l.join(sep))),
        ("split", [Str(sep), Str(s)]) => {
            Some(List(s.split(sep.as_str()).map(String::from).collect()))
        }
        ("splitIndex", [Int(i), Str(sep), Str(s)]) => {
            let parts: Vec<String> = s.split(sep.as_str()).map(String::from).collect();
            Some(Str(pick(&parts, *i).unwrap_or_default()))
        }
        ("replace", [Int(n), Str(old), Str(new), Str(s)]) => Some(Str(if *n < 0 {
            s.replace(old.as_str(), new)
        } else {
            s.replacen(old.as_str(), new, *n as usize)
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
