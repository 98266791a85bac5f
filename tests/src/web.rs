//! A logged-in office web session over plain HTTP, as a browser would hold
//! one: the session cookie from `POST /login`, the CSRF token read from the
//! page, no redirects followed (tests look at them).

use crate::TestNode;
use anyhow::{bail, Context};
use std::io::Write;
use std::process::{Command, Stdio};

/// `civsync user add NAME --role ROLE`, the password on stdin.
pub fn add_user(node: &TestNode, name: &str, role: &str, password: &str) -> anyhow::Result<()> {
    let mut child = Command::new(crate::civsync_binary())
        .args(["user", "add", name, "--role", role, "--data-dir"])
        .arg(&node.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run civsync user add")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "civsync user add failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

pub struct WebSession {
    pub base: String,
    pub http: reqwest::blocking::Client,
    /// `civsync_session=...`, once logged in.
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token the page carries (in its `<meta name="csrf-token">`).
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf-token\" content=\"")?;
        let rest = &self.body[at + "name=\"csrf-token\" content=\"".len()..];
        Some(rest[..rest.find('"')?].to_string())
    }
}

impl WebSession {
    pub fn new(node: &TestNode) -> WebSession {
        WebSession {
            base: format!("http://{}", node.api),
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(crate::REQUEST_TIMEOUT)
                .build()
                .expect("http client"),
            cookie: None,
        }
    }

    fn finish(response: reqwest::blocking::Response) -> anyhow::Result<Page> {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Page {
            status,
            location,
            body: response.text()?,
        })
    }

    /// `POST /login`; keeps the session cookie when it is set.
    pub fn login(&mut self, name: &str, password: &str) -> anyhow::Result<Page> {
        let response = self
            .http
            .post(format!("{}/login", self.base))
            .form(&[("name", name), ("password", password), ("next", "/")])
            .send()?;
        if let Some(cookie) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
        {
            self.cookie = cookie.split(';').next().map(str::to_string);
        }
        WebSession::finish(response)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Page> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        WebSession::finish(request.send()?)
    }

    /// POST a form (with the session cookie, if any).
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(fields);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        WebSession::finish(request.send()?)
    }

    /// POST a form whose answer is a file (a download): the status, the
    /// `content-disposition` header and the bytes as they came.
    pub fn post_form_for_file(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Option<String>, Vec<u8>)> {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(fields);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let disposition = response
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((status, disposition, response.bytes()?.to_vec()))
    }

    /// POST a file's bytes as the import page's script sends them: the
    /// file as the body, the CSRF token in its header.
    pub fn post_file(
        &self,
        path: &str,
        csrf: Option<&str>,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Page> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        WebSession::finish(request.send()?)
    }
}
