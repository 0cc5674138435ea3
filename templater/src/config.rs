//! Command line and environment of every `templater` subcommand, and the checked configuration
//! of `templater run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use swarmgate_consul::{ConsulArgs, ConsulConfig};
use swarmgate_runtime::telemetry::LogFormat;

use crate::control::{ControlAddr, DEFAULT_CONTROL_SOCKET};
use crate::daemon::RunConfig;
use crate::dataplane::Mode;
use crate::keys::Keys;
use crate::lua_plane::{LuaOptions, DEFAULT_DICT_SIZE, DEFAULT_LUA_DIR, DEFAULT_STATE_FILE};
use crate::nginx::{Nginx, DEFAULT_CHECK_TIMEOUT};
use crate::pin::{self, DEFAULT_PREVIEW_HEADER};
use crate::plan::{HealthFilter, PlanOptions};
use crate::render::{LuaPage, Page, TemplateSpec, DATAPLANE_TEMPLATE};
use crate::traffic_syslog::{parse_listen, DEFAULT_TRAFFIC_LISTEN};

pub const EXIT_HELP: &str = "EXIT CODES:
    0   success (run: stopped by SIGINT/SIGTERM; --help, --version; a closed stdout)
    1   Consul unreachable or another runtime error
    2   a value the command was given is refused: service, colour, percent (the message names it)
    3   refused: no passing instance of the target colour, no previous colour, no active colour
    4   conflict: another deploy changed the settings meanwhile (check-and-set lost), or the
        service is being promoted (a second promote, or flip/canary during one); run again
    5   --wait-live timed out before every templater acknowledged the change
    6   promote: a step failed (limits, --check, no passing instance) or `rollback` aborted
        it; traffic is back on the colour that was active
    7   promote: inconclusive (too few requests, or a baseline failing alike, until
        --max-wait); traffic is back on the colour that was active
    130 promote stopped by SIGINT, after rolling back (143: SIGTERM)
    64  bad flags or environment, clap's own errors included (the message names the input)
    130 run: a second signal cut the drain short";

pub const DEFAULT_KV_PREFIX: &str = "deploy";
pub const DEFAULT_COLORS: &str = "blue,green";
pub const DEFAULT_OUTPUT_DIR: &str = "/etc/nginx/conf.d";
pub const DEFAULT_NGINX_CHECK: &str = "nginx -t -q";

/// Consul → nginx with blue/green and canary; and the deploy step that moves traffic.
#[derive(Debug, Parser)]
#[command(name = "templater", version, after_help = EXIT_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub consul: ConsulArgs,
    /// KV prefix of deploy settings (<prefix>/<service>/active|canary|previous).
    #[arg(long = "kv-prefix", global = true, env = "TEMPLATER_KV_PREFIX", default_value = DEFAULT_KV_PREFIX)]
    pub kv_prefix: String,
    /// The colours, as instance tags.
    #[arg(long, global = true, env = "TEMPLATER_COLORS", default_value = DEFAULT_COLORS, value_delimiter = ',')]
    pub colors: Vec<String>,
    /// Which instances `run` serves (and `status` counts); flip and rollback always need a passing one.
    #[arg(long, global = true, env = "TEMPLATER_HEALTH", value_enum, default_value_t = HealthFilter::Passing)]
    pub health: HealthFilter,
    /// Log format.
    #[arg(long = "log-format", global = true, env = "TEMPLATER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch Consul, render, install, reload nginx.
    Run(Box<RunArgs>),
    /// Make COLOR (default: the other colour) active, canary 0.
    Flip(FlipArgs),
    /// Send PERCENT (0-100) of traffic to the colours other than the active one.
    Canary(CanaryArgs),
    /// Go back to the previous colour, canary 0.
    Rollback(RollbackArgs),
    /// Show settings and instances as Consul says, and per edge the plan it has live (shares).
    Status(StatusArgs),
    /// Move traffic to COLOR in steps, judging each on live traffic; roll back on failure.
    Promote(Box<crate::promote::PromoteArgs>),
    /// Show a service's deploy history, newest last.
    History(HistoryArgs),
}

/// Who deploys, written to the deploy history.
#[derive(Debug, Args)]
pub struct By {
    /// Who or what deploys, for `templater history` [default: the CI run from GITHUB_RUN_ID,
    /// CI_JOB_ID, CIRCLE_BUILD_NUM, BUILDKITE_BUILD_NUMBER or BUILD_NUMBER (Jenkins, TeamCity)
    /// with its job and user, else $USER, else "unknown"].
    #[arg(long = "by", env = "TEMPLATER_BY", value_name = "WHO")]
    pub by: Option<String>,
}

impl By {
    /// `--by`, else [`crate::history::default_by`].
    pub fn resolve(&self) -> String {
        self.by
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map_or_else(crate::history::default_by, str::to_string)
    }
}

#[derive(Debug, Args)]
pub struct FlipArgs {
    pub service: String,
    pub color: Option<String>,
    /// Flip even when COLOR has no passing instance.
    #[arg(long)]
    pub force: bool,
    /// Return only once every running templater has the change live (seconds).
    #[arg(long = "wait-live", value_name = "SECONDS")]
    pub wait_live: Option<u64>,
    #[command(flatten)]
    pub by: By,
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    pub service: String,
    /// A whole percentage from 0 to 100 (anything else is refused with exit 2).
    #[arg(allow_hyphen_values = true)]
    pub percent: String,
    /// Return only once every running templater has the change live (seconds).
    #[arg(long = "wait-live", value_name = "SECONDS")]
    pub wait_live: Option<u64>,
    #[command(flatten)]
    pub by: By,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    pub service: String,
    /// Roll back even when the previous colour has no passing instance.
    #[arg(long)]
    pub force: bool,
    /// Return only once every running templater has the change live (seconds).
    #[arg(long = "wait-live", value_name = "SECONDS")]
    pub wait_live: Option<u64>,
    #[command(flatten)]
    pub by: By,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub service: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub service: String,
    /// Print the entries as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// SRC:DEST, repeatable [default: the built-in templates into --output-dir].
    #[arg(long = "template", env = "TEMPLATER_TEMPLATES", value_delimiter = ';')]
    pub templates: Vec<String>,
    /// Where the built-in templates are written.
    #[arg(long = "output-dir", env = "TEMPLATER_OUTPUT_DIR", default_value = DEFAULT_OUTPUT_DIR)]
    pub output_dir: PathBuf,
    /// nginx pid file; nginx gets SIGHUP after each install.
    #[arg(long = "nginx-pid", env = "TEMPLATER_NGINX_PID")]
    pub nginx_pid: Option<PathBuf>,
    /// Command that validates the config; an empty string skips the check.
    #[arg(long = "nginx-check", env = "TEMPLATER_NGINX_CHECK", default_value = DEFAULT_NGINX_CHECK)]
    pub nginx_check: String,
    /// Longest the check may run before it is killed and counted as failed.
    #[arg(
        long = "check-timeout",
        env = "TEMPLATER_CHECK_TIMEOUT",
        default_value = "30s"
    )]
    pub check_timeout: String,
    /// Serve instances registered at a host name (nginx resolves it when it loads the config);
    /// by default only IP addresses are served.
    #[arg(long = "allow-hostnames", env = "TEMPLATER_ALLOW_HOSTNAMES")]
    pub allow_hostnames: bool,
    /// Quiescence MIN[:MAX]: an isolated change goes out at once, a burst at most once per MIN and no later than MAX.
    #[arg(long, env = "TEMPLATER_WAIT", default_value = crate::quiesce::DEFAULT_WAIT)]
    pub wait: String,
    /// How long to keep the last view when Consul's index goes backwards and instances vanish.
    #[arg(long, env = "TEMPLATER_HOLD", default_value = "30s")]
    pub hold: String,
    /// Render once and exit (non-zero when the pass fails).
    #[arg(long)]
    pub once: bool,
    /// Render to stdout; touch no file, send no signal, write nothing to KV.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Serve /metrics (Prometheus) and /health on this address.
    #[arg(long = "metrics-addr", env = "TEMPLATER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// This templater's name in KV (acknowledgements, status) [default: the host name].
    #[arg(long, env = "TEMPLATER_NAME")]
    pub name: Option<String>,
    /// Render the inactive colour without `backup` (omit it) when the canary is 0.
    #[arg(long = "no-backup", env = "TEMPLATER_NO_BACKUP")]
    pub no_backup: bool,
    /// Domain of public virtual hosts (<service>[-<namespace>].<domain>).
    #[arg(long, env = "TEMPLATER_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Port public virtual hosts listen on.
    #[arg(long, env = "TEMPLATER_LISTEN", default_value_t = 80)]
    pub listen: u16,
    /// TLS port of public virtual hosts that have certificates.
    #[arg(
        long = "listen-tls",
        env = "TEMPLATER_LISTEN_TLS",
        default_value_t = 443
    )]
    pub listen_tls: u16,
    /// Data plane: `reload` renders every change and reloads nginx; `lua` pushes instances and
    /// weights to nginx's Lua balancer and reloads only for structural changes.
    #[arg(long, env = "TEMPLATER_DATAPLANE", value_enum, default_value_t = Mode::Reload)]
    pub dataplane: Mode,
    /// Lua data plane: nginx's control endpoint, a unix socket path or a loopback IP:PORT.
    #[arg(long = "control-socket", env = "TEMPLATER_CONTROL_SOCKET", default_value = DEFAULT_CONTROL_SOCKET)]
    pub control_socket: String,
    /// Lua data plane: the state file nginx loads at start (written atomically on every change)
    /// [default: <output-dir>/swarmgate-state.json].
    #[arg(long = "state-file", env = "TEMPLATER_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Lua data plane: where the templater installs its `swarmgate/*.lua` modules for nginx
    /// (nginx's lua_package_path) [default: <output-dir>/swarmgate-lua].
    #[arg(long = "lua-dir", env = "TEMPLATER_LUA_DIR")]
    pub lua_dir: Option<PathBuf>,
    /// Lua data plane: size of nginx's shared dictionary holding the state (`16m`, `512k`).
    #[arg(long = "dict-size", env = "TEMPLATER_DICT_SIZE", default_value = DEFAULT_DICT_SIZE)]
    pub dict_size: String,
    /// Preview for every service: a request whose preview header names a colour goes to that
    /// colour's healthy instances whatever the weights, or answers 503 when it has none
    /// [default: only services with meta preview=true].
    #[arg(long, env = "TEMPLATER_PREVIEW")]
    pub preview: bool,
    /// The request header that names the colour of a preview request (letters, digits, `-`).
    #[arg(long = "preview-header", env = "TEMPLATER_PREVIEW_HEADER", default_value = DEFAULT_PREVIEW_HEADER)]
    pub preview_header: String,
    /// Reload data plane: where the templater receives nginx's traffic log (one JSON line per
    /// proxied request, syslog over UDP), a loopback IP:PORT; port 0 picks a free port at start
    /// [default: 127.0.0.1:0].
    #[arg(long = "traffic-listen", env = "TEMPLATER_TRAFFIC_LISTEN")]
    pub traffic_listen: Option<String>,
    /// Longest blocking-query wait.
    #[arg(
        long = "watch-wait",
        env = "TEMPLATER_WATCH_WAIT",
        default_value = "60s",
        hide = true
    )]
    pub watch_wait: String,
}

impl Common {
    pub fn consul_config(&self) -> Result<ConsulConfig, String> {
        self.consul.config(None).map_err(|e| e.to_string())
    }

    pub fn keys(&self) -> Result<Keys, String> {
        Keys::new(&self.kv_prefix)
    }

    pub fn checked_colors(&self) -> Result<Vec<String>, String> {
        let colors: Vec<String> = self
            .colors
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if colors.len() < 2 {
            return Err(format!(
                "--colors {:?}: name at least two colours",
                self.colors.join(",")
            ));
        }
        for c in &colors {
            swarmgate_consul::rules::plain_name(c).map_err(|e| format!("--colors: colour {e}"))?;
        }
        Ok(colors)
    }
}

/// Checks the Lua data plane's flags (`None` in reload mode).
fn lua_options(r: &RunArgs) -> Result<Option<LuaOptions>, String> {
    if r.dataplane != Mode::Lua {
        return Ok(None);
    }
    if r.allow_hostnames {
        return Err(
            "--allow-hostnames needs --dataplane reload: the Lua balancer takes IP addresses only"
                .into(),
        );
    }
    let control =
        ControlAddr::parse(&r.control_socket).map_err(|e| format!("--control-socket {e}"))?;
    let plain_path = |flag: &str, p: &std::path::Path| {
        let s = p.to_string_lossy();
        if s.starts_with('/')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "{flag} {s:?}: an absolute path of letters, digits and ./_- only"
            ))
        }
    };
    let digits = r.dict_size.trim_end_matches(['k', 'm', 'K', 'M']);
    let dict_ok = !digits.is_empty()
        && digits.len() <= 6
        && digits.chars().all(|c| c.is_ascii_digit())
        && r.dict_size.len() - digits.len() <= 1;
    if !dict_ok {
        return Err(format!(
            "--dict-size {:?}: a size such as 16m or 512k",
            r.dict_size
        ));
    }
    Ok(Some(LuaOptions {
        control,
        state_file: plain_path(
            "--state-file",
            &r.state_file
                .clone()
                .unwrap_or_else(|| r.output_dir.join(DEFAULT_STATE_FILE)),
        )?,
        lua_dir: plain_path(
            "--lua-dir",
            &r.lua_dir
                .clone()
                .unwrap_or_else(|| r.output_dir.join(DEFAULT_LUA_DIR)),
        )?,
        dict_size: r.dict_size.to_ascii_lowercase(),
    }))
}

/// Checks `--traffic-listen`: where nginx's traffic log goes when `run` drives the reload data
/// plane as a daemon (`None` in lua mode, which counts in nginx, and with `--once` or
/// `--dry-run`, which leave no receiver running).
fn traffic_listen(r: &RunArgs) -> Result<Option<SocketAddr>, String> {
    if r.dataplane != Mode::Reload {
        return match &r.traffic_listen {
            Some(_) => Err(
                "--traffic-listen needs --dataplane reload: the Lua data plane counts traffic in nginx"
                    .into(),
            ),
            None => Ok(None),
        };
    }
    let raw = r
        .traffic_listen
        .as_deref()
        .unwrap_or(DEFAULT_TRAFFIC_LISTEN);
    let addr = parse_listen(raw).map_err(|e| format!("--traffic-listen {e}"))?;
    Ok(Some(addr).filter(|_| !r.once && !r.dry_run))
}

/// Checks `run`'s flags into a [`RunConfig`]; errors name the flag.
pub fn run_config(common: &Common, r: &RunArgs) -> Result<RunConfig, String> {
    let lua = lua_options(r)?;
    let traffic_listen = traffic_listen(r)?;
    let mut templates: Vec<TemplateSpec> = if r.templates.is_empty() {
        TemplateSpec::defaults(&r.output_dir)
    } else {
        r.templates
            .iter()
            .map(|t| TemplateSpec::parse(t))
            .collect::<Result<_, _>>()?
    };
    if let Some(lua) = &lua {
        templates.push(TemplateSpec::built_in(DATAPLANE_TEMPLATE, &r.output_dir));
        templates.extend(TemplateSpec::lua_modules(&lua.lua_dir));
    }
    if !r
        .domain
        .split('.')
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(format!("--domain {:?} is not a domain name", r.domain));
    }
    let name = match &r.name {
        Some(n) => n.clone(),
        None => swarmgate_runtime::host::host_name().unwrap_or_else(|| "templater".into()),
    };
    swarmgate_consul::rules::plain_name(&name).map_err(|e| format!("--name: {e}"))?;
    let colors = common.checked_colors()?;
    let preview_header = pin::check_header(&r.preview_header)?;
    let duration = |flag: &str, raw: &str| {
        swarmgate_consul::duration::parse_or_seconds(raw).map_err(|e| format!("{flag}: {e}"))
    };
    Ok(RunConfig {
        consul: common.consul_config()?,
        keys: common.keys()?,
        templates,
        nginx: Nginx {
            check: Some(r.nginx_check.clone()).filter(|c| !c.trim().is_empty()),
            check_timeout: duration("--check-timeout", &r.check_timeout)?
                .max(Duration::from_millis(100))
                .min(DEFAULT_CHECK_TIMEOUT * 10),
            pid_file: r.nginx_pid.clone(),
        },
        wait: crate::quiesce::parse_wait(&r.wait).map_err(|e| format!("--wait: {e}"))?,
        watch_wait: duration("--watch-wait", &r.watch_wait)?.max(Duration::from_millis(100)),
        page: Page {
            colors: colors.clone(),
            domain: r.domain.clone(),
            listen: r.listen,
            listen_tls: r.listen_tls,
            dataplane: r.dataplane.as_str(),
            preview_var: pin::header_variable(&preview_header),
            preview_header,
            lua: lua.as_ref().map(|l| LuaPage {
                lua_dir: l.lua_dir.display().to_string(),
                state_file: l.state_file.display().to_string(),
                control_socket: l.control.to_string(),
                dict_size: l.dict_size.clone(),
            }),
            // Known once the receiver is bound (`run`).
            traffic: None,
        },
        plan: PlanOptions {
            colors,
            health: common.health,
            backup_inactive: !r.no_backup,
            domain: r.domain.clone(),
            allow_hostnames: r.allow_hostnames,
            preview: r.preview,
        },
        once: r.once,
        dry_run: r.dry_run,
        metrics_addr: r.metrics_addr,
        name,
        hold: duration("--hold", &r.hold)?,
        lua,
        traffic_listen,
    })
}
