//! A Docker socket proxy that a test controls: clients talk to Docker through it, and
//! [`SocketProxy::cut`] breaks every connection (and refuses new ones) as a daemon restart would.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

/// Forwards a unix socket to `/var/run/docker.sock`.
pub struct SocketProxy {
    pub path: PathBuf,
    target: PathBuf,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl SocketProxy {
    /// Listens on a fresh socket path. Must be called inside a tokio runtime.
    pub fn start() -> Self {
        let path = std::env::temp_dir().join(format!("{}.sock", crate::unique("docker-proxy")));
        let proxy = SocketProxy {
            path,
            target: PathBuf::from("/var/run/docker.sock"),
            tasks: Arc::default(),
        };
        proxy.listen();
        proxy
    }

    /// `unix://PATH`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn listen(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind proxy socket");
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut upstream) = UnixStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                tasks.lock().expect("proxy tasks").push(conn.abort_handle());
            }
        });
        self.tasks
            .lock()
            .expect("proxy tasks")
            .push(accept.abort_handle());
    }

    /// Breaks every connection and stops listening.
    pub fn cut(&self) {
        for task in self.tasks.lock().expect("proxy tasks").drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }

    /// Listens again.
    pub fn restore(&self) {
        self.listen();
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
