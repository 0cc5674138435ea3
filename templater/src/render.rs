//! Rendering: minijinja templates with a formatter that makes every printed value safe nginx
//! syntax (bare when it is a plain token, else a quoted, escaped string; `$` and control
//! characters refused), so no value from labels or KV can close a block or add a directive.

use std::path::{Path, PathBuf};

use minijinja::value::ValueKind;
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
};

use serde::Serialize;

use crate::plan::{Plan, ServicePlan};

/// The built-in templates (the files in `templates/`); the last only in `--dataplane lua`.
pub const DEFAULT_TEMPLATES: [(&str, &str); 3] = [
    (
        "upstreams.conf.j2",
        include_str!("../../templates/upstreams.conf.j2"),
    ),
    (
        "vhosts.conf.j2",
        include_str!("../../templates/vhosts.conf.j2"),
    ),
    (
        DATAPLANE_TEMPLATE,
        include_str!("../../templates/dataplane.conf.j2"),
    ),
];

/// The Lua data plane's nginx modules (`templates/lua`), built in and installed into `--lua-dir`
/// with the config in `--dataplane lua`: nginx runs the modules of the templater that renders
/// for them. Installed verbatim (each is a template that is one raw block).
pub const LUA_MODULES: [(&str, &str); 6] = [
    (
        "swarmgate/balancer.lua",
        include_str!("../../templates/lua/swarmgate/balancer.lua"),
    ),
    (
        "swarmgate/control.lua",
        include_str!("../../templates/lua/swarmgate/control.lua"),
    ),
    (
        "swarmgate/preview.lua",
        include_str!("../../templates/lua/swarmgate/preview.lua"),
    ),
    (
        "swarmgate/state.lua",
        include_str!("../../templates/lua/swarmgate/state.lua"),
    ),
    (
        "swarmgate/traffic.lua",
        include_str!("../../templates/lua/swarmgate/traffic.lua"),
    ),
    (
        "swarmgate/validate.lua",
        include_str!("../../templates/lua/swarmgate/validate.lua"),
    ),
];

/// The Lua data plane's http-level include (shared dict, state loading, control listener),
/// rendered beside the others in `--dataplane lua`.
pub const DATAPLANE_TEMPLATE: &str = "dataplane.conf.j2";

/// One template and where its output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSpec {
    /// A file to read, or `None` for a built-in default (named by `name`).
    pub source: Option<PathBuf>,
    pub name: String,
    pub dest: PathBuf,
}

impl TemplateSpec {
    /// Parses `SRC:DEST`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (src, dest) = raw
            .split_once(':')
            .filter(|(s, d)| !s.is_empty() && !d.is_empty())
            .ok_or_else(|| format!("--template {raw:?}: expected SRC:DEST"))?;
        Ok(TemplateSpec {
            source: Some(PathBuf::from(src)),
            name: src.to_string(),
            dest: PathBuf::from(dest),
        })
    }

    /// The built-in templates, written into `dir` as `swarmgate-<name>.conf`.
    pub fn defaults(dir: &Path) -> Vec<Self> {
        DEFAULT_TEMPLATES
            .iter()
            .filter(|(name, _)| *name != DATAPLANE_TEMPLATE)
            .map(|(name, _)| Self::built_in(name, dir))
            .collect()
    }

    /// The built-in Lua modules, written into `lua_dir` (`swarmgate/<module>.lua`).
    pub fn lua_modules(lua_dir: &Path) -> Vec<Self> {
        LUA_MODULES
            .iter()
            .map(|(name, _)| TemplateSpec {
                source: None,
                name: name.to_string(),
                dest: lua_dir.join(name),
            })
            .collect()
    }

    /// The built-in template `name`, written into `dir` as `swarmgate-<name>.conf`.
    pub fn built_in(name: &str, dir: &Path) -> Self {
        TemplateSpec {
            source: None,
            name: name.to_string(),
            dest: dir.join(format!("swarmgate-{}", name.trim_end_matches(".j2"))),
        }
    }
}

/// A compiled set of templates.
pub struct Renderer {
    env: Environment<'static>,
    specs: Vec<TemplateSpec>,
}

impl Renderer {
    /// Reads and compiles every template; any error names the file and line.
    pub fn load(specs: &[TemplateSpec]) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::Custom("nginx"));
        env.set_formatter(nginx_formatter);
        env.add_filter("lua_string", lua_string);
        env.set_keep_trailing_newline(true);
        for spec in specs {
            let text = match &spec.source {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| format!("template {}: {e}", path.display()))?,
                None => built_in(&spec.name)?,
            };
            env.add_template_owned(spec.name.clone(), text)
                .map_err(|e| format!("template {}: {e:#}", spec.name))?;
        }
        Ok(Renderer {
            env,
            specs: specs.to_vec(),
        })
    }

    /// Renders every template: `(destination, bytes)`, or the first error naming the template.
    pub fn render(&self, ctx: &Context) -> Result<Rendered, String> {
        let value = Value::from_serialize(ctx);
        self.specs
            .iter()
            .map(|spec| {
                let tmpl = self
                    .env
                    .get_template(&spec.name)
                    .map_err(|e| format!("{e:#}"))?;
                let text = tmpl
                    .render(&value)
                    .map_err(|e| format!("template {}: {e:#}", spec.name))?;
                Ok((spec.dest.clone(), text.into_bytes()))
            })
            .collect()
    }

    pub fn specs(&self) -> &[TemplateSpec] {
        &self.specs
    }

    /// Renders the served services of `plan`; when that fails, finds the services whose values
    /// the templates cannot print (by halving the set) and renders without them, answering
    /// them with the error each gave. An error with no service at all is the template's own.
    pub fn render_isolating(
        &self,
        plan: &Plan,
        page: &Page,
    ) -> Result<(Rendered, Vec<(String, String)>), String> {
        let served: Vec<&ServicePlan> = plan.served().collect();
        let attempt = |set: &[&ServicePlan]| self.render(&page.context(set));
        if let Ok(files) = attempt(&served) {
            return Ok((files, Vec::new()));
        }
        let global = attempt(&[])?;
        let mut culprits = Vec::new();
        find_culprits(&served, &attempt, &mut culprits);
        let names: std::collections::HashSet<&str> =
            culprits.iter().map(|(n, _)| n.as_str()).collect();
        let clean: Vec<&ServicePlan> = served
            .into_iter()
            .filter(|s| !names.contains(s.name.as_str()))
            .collect();
        let files = attempt(&clean).unwrap_or(global);
        Ok((files, culprits))
    }
}

/// The text of built-in template `name`; a Lua module is one raw block (printed verbatim).
fn built_in(name: &str) -> Result<String, String> {
    if let Some((_, text)) = DEFAULT_TEMPLATES.iter().find(|(n, _)| *n == name) {
        return Ok(text.to_string());
    }
    LUA_MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| format!("{{% raw %}}{text}{{% endraw %}}"))
        .ok_or_else(|| format!("no built-in template {name}"))
}

/// Halves `set` until each failing service stands alone.
fn find_culprits(
    set: &[&ServicePlan],
    attempt: &dyn Fn(&[&ServicePlan]) -> Result<Rendered, String>,
    out: &mut Vec<(String, String)>,
) {
    match attempt(set) {
        Ok(_) => {}
        Err(e) if set.len() == 1 => out.push((set[0].name.clone(), e)),
        Err(_) => {
            let (a, b) = set.split_at(set.len() / 2);
            find_culprits(a, attempt, out);
            find_culprits(b, attempt, out);
        }
    }
}

/// Rendered files: `(destination, bytes)`.
pub type Rendered = Vec<(PathBuf, Vec<u8>)>;

/// What every template sees besides the services: flags of this edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page {
    pub colors: Vec<String>,
    pub domain: String,
    pub listen: u16,
    pub listen_tls: u16,
    /// `reload` or `lua`: which data plane the upstreams are printed for.
    pub dataplane: &'static str,
    /// `--preview-header` (checked: letters, digits, `-`).
    pub preview_header: String,
    /// nginx's variable of that header, without the `$` (`http_x_swarmgate_color`).
    pub preview_var: String,
    /// The Lua data plane's settings; `None` in reload mode.
    pub lua: Option<LuaPage>,
    /// Where nginx sends its traffic log (reload mode, `templater run` only; see
    /// [`crate::traffic_syslog`]); `None`: templates print no traffic log.
    pub traffic: Option<TrafficPage>,
}

/// What `dataplane.conf.j2` prints (every value checked when the flags were read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LuaPage {
    /// The directory holding `swarmgate/*.lua`.
    pub lua_dir: String,
    pub state_file: String,
    /// A unix socket path, or a loopback `IP:PORT`.
    pub control_socket: String,
    /// The shared dictionary's size (`16m`).
    pub dict_size: String,
}

/// What the templates print for nginx's traffic log: `access_log {{ traffic.syslog }}
/// {{ traffic.format }};` in each location proxying to an `sg_*` upstream, and the
/// `log_format` named `format` (vhosts.conf.j2 defines it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrafficPage {
    /// `syslog:server=127.0.0.1:PORT,nohostname,tag=swarmgate`.
    pub syslog: String,
    /// The log format's name, `swarmgate_traffic`.
    pub format: String,
}

impl Page {
    /// The template context for `services`.
    pub fn context<'a>(&'a self, services: &'a [&'a ServicePlan]) -> Context<'a> {
        Context {
            services,
            colors: &self.colors,
            domain: &self.domain,
            listen: self.listen,
            listen_tls: self.listen_tls,
            dataplane: self.dataplane,
            preview_header: &self.preview_header,
            preview_var: &self.preview_var,
            lua: self.lua.as_ref(),
            traffic: self.traffic.as_ref(),
        }
    }
}

/// The whole template context: the served services' plans, sorted by name, and the page.
#[derive(Clone, Debug, Serialize)]
pub struct Context<'a> {
    pub services: &'a [&'a ServicePlan],
    pub colors: &'a [String],
    pub domain: &'a str,
    pub listen: u16,
    pub listen_tls: u16,
    pub dataplane: &'a str,
    pub preview_header: &'a str,
    pub preview_var: &'a str,
    #[serde(flatten)]
    pub lua: Option<&'a LuaPage>,
    pub traffic: Option<&'a TrafficPage>,
}

/// Prints numbers and booleans as they are, plain tokens bare, anything else as a quoted
/// nginx string; refuses `$` (nginx would expand it) and control characters.
fn nginx_formatter(out: &mut Output, _state: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return write!(out, "{value}").map_err(Error::from);
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(()),
        ValueKind::Number | ValueKind::Bool => write!(out, "{value}").map_err(Error::from),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            let escaped =
                nginx_token(s).map_err(|why| Error::new(ErrorKind::InvalidOperation, why))?;
            out.write_str(&escaped).map_err(Error::from)
        }
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot print a {other} into nginx config; print its fields"),
        )),
    }
}

/// `value` as nginx config text: bare when every character is plain, else double-quoted.
pub fn nginx_token(value: &str) -> Result<String, String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("value {value:?} has control character {c:?}"));
    }
    if value.contains('$') {
        return Err(format!("value {value:?} has '$', which nginx would expand"));
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "._:/[]@%+=,~-*".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return Ok(value.to_string());
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// `value` as a Lua string literal, for code in `*_by_lua_block` (the Lua data plane's
/// templates print names and paths with `|lua_string`): every byte but letters, digits and
/// `/._-:` becomes a `\ddd` escape, so no value can end the string or add code.
pub fn lua_string(value: &str) -> Value {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"/._-:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('"');
    Value::from_safe_string(out)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
