//! A real nginx on a free loopback port with its own prefix, config, pid file and `conf.d/`
//! (where a templater installs), and busybox httpd backends that answer a fixed text.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{eventually, free_port, unique};

/// An nginx master with `include conf.d/*.conf;` in its `http` block; stopped on drop.
pub struct NginxServer {
    pub dir: PathBuf,
    /// The port templated virtual hosts are told to listen on.
    pub port: u16,
}

impl NginxServer {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("nginx"));
        std::fs::create_dir_all(dir.join("conf.d")).expect("conf.d");
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n  include {d}/conf.d/*.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let server = NginxServer {
            dir,
            port: free_port(),
        };
        let status = Command::new("nginx")
            .args([
                "-c",
                &server.conf().display().to_string(),
                "-p",
                &server.dir.display().to_string(),
            ])
            .status()
            .expect("run nginx (apt-get install nginx-light)");
        assert!(status.success(), "nginx did not start");
        let pid = server.pid_file();
        eventually(Duration::from_secs(10), "nginx writes its pid", || {
            let pid = pid.clone();
            async move { std::fs::read_to_string(&pid).map(drop) }
        })
        .await;
        // Its worker too: a test that notes the workers to tell a reload must not note none.
        eventually(
            Duration::from_secs(10),
            "nginx starts its worker",
            || async {
                if server.workers().is_empty() {
                    Err("no worker yet")
                } else {
                    Ok(())
                }
            },
        )
        .await;
        server
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    pub fn conf_d(&self) -> PathBuf {
        self.dir.join("conf.d")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }

    /// The check command a templater runs for this nginx.
    pub fn check_command(&self) -> String {
        format!(
            "nginx -t -q -c {} -p {}",
            self.conf().display(),
            self.dir.display()
        )
    }

    /// The master's pid.
    pub fn master_pid(&self) -> u32 {
        std::fs::read_to_string(self.pid_file())
            .expect("pid")
            .trim()
            .parse()
            .expect("pid number")
    }

    /// The worker pids of the master, from /proc: the same set means no reload took place.
    pub fn workers(&self) -> Vec<u32> {
        let pid = self.master_pid();
        let mut pids: Vec<u32> =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
        pids.sort_unstable();
        pids
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").args(["-QUIT", pid.trim()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A busybox httpd on a free loopback port answering `/` with `text`; killed on drop.
pub struct Backend {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Backend {
    pub fn start(text: &str) -> Self {
        let dir = std::env::temp_dir().join(unique("backend"));
        std::fs::create_dir_all(&dir).expect("backend dir");
        std::fs::write(dir.join("index.html"), format!("{text}\n")).expect("index");
        let port = free_port();
        let child = Command::new("busybox")
            .args([
                "httpd",
                "-f",
                "-p",
                &format!("127.0.0.1:{port}"),
                "-h",
                &dir.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox httpd (apt-get install busybox-static)");
        Backend { port, child, dir }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
