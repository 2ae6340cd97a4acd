//! The login page (and the logout page's confirm button): one HTML document shared by every
//! shell.
//!
//! Plain HTML and CSS, no JavaScript: it works in any browser, with a screen reader (labels
//! bound to their fields, the error announced with `role="alert"`), and on a phone (viewport
//! meta, large touch targets, `autocomplete` hints so password managers fill it in).

use crate::http::{OutputFull, ResponseWriter, Status};

const DOC_START: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>"#;

/// The style every gatehouse page shares (inline: the CSP allows no other).
const STYLE: &str = r#"
:root{color-scheme:light dark}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:#f4f4f5;color:#18181b}
main{background:#fff;padding:2rem 1.5rem;border-radius:.75rem;box-shadow:0 1px 4px rgba(0,0,0,.15);width:min(22rem,calc(100% - 2rem));box-sizing:border-box}
h1{font-size:1.5rem;margin:0 0 1rem}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;font:inherit;padding:.7rem;margin-top:.3rem;border:1px solid #71717a;border-radius:.4rem;background:inherit;color:inherit}
input:focus,button:focus{outline:3px solid #2563eb;outline-offset:2px}
button{margin-top:1.5rem;width:100%;font:inherit;font-weight:600;padding:.8rem;border:0;border-radius:.4rem;background:#1d4ed8;color:#fff;cursor:pointer}
.error{margin:0 0 .5rem;padding:.7rem;border-radius:.4rem;background:#fef2f2;color:#991b1b;border:1px solid #fca5a5}
@media (prefers-color-scheme:dark){body{background:#18181b;color:#f4f4f5}main{background:#27272a}}
"#;

const TAIL: &str = r#"<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#;

/// The logout page after its hidden field.
const LOGOUT_TAIL: &str =
    "<button type=\"submit\">Sign out</button>\n</form>\n</main>\n</body>\n</html>\n";

/// The `Content-Security-Policy` of gatehouse's pages: no scripts at all, styles only inline,
/// forms only to this site, never framed.
pub const PAGE_CSP: &[u8] =
    b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Room the login page takes besides its escaped return target (which adds at most five
/// bytes per byte of target); it is written straight into the shell's output buffer.
pub const MAX_LOGIN_PAGE_LEN: usize = 4096;

/// What the login page shows.
#[derive(Clone, Copy, Debug)]
pub struct LoginPage<'a> {
    /// Where the form posts (the login endpoint).
    pub action: &'a str,
    /// The CSRF token for the hidden field.
    pub csrf: &'a str,
    /// Where to go after login (a safe same-site target).
    pub return_target: &'a [u8],
    /// A message to show above the form.
    pub error: Option<&'a str>,
}

/// The logout endpoint's page for a `GET`: a button that posts the logout form. Logging out
/// takes a `POST` with the CSRF checks, so that another site cannot log anyone out with a link
/// or an image.
#[derive(Clone, Copy, Debug)]
pub struct LogoutPage<'a> {
    /// Where the form posts (the logout endpoint).
    pub action: &'a str,
    /// The CSRF token for the hidden field.
    pub csrf: &'a str,
    /// A message to show above the button.
    pub error: Option<&'a str>,
}

impl LogoutPage<'_> {
    /// Writes the whole response: `status`, the CSRF cookie (`set_cookie`), the page.
    pub fn write_response(
        &self,
        status: Status,
        set_cookie: &[u8],
        close: bool,
        out: &mut [u8],
    ) -> Result<usize, OutputFull> {
        form_response(
            self.action,
            self.csrf,
            None,
            self.error,
            status,
            set_cookie,
            close,
            out,
        )
    }
}

impl LoginPage<'_> {
    /// Writes the HTML into `out`. Every inserted value is HTML-escaped.
    pub fn write_html(&self, out: &mut [u8]) -> Result<usize, OutputFull> {
        let mut w = Html {
            out,
            len: 0,
            count_only: false,
        };
        self.form().html(&mut w)?;
        Ok(w.len)
    }

    fn form(&self) -> FormPage<'_> {
        FormPage::new(self.action, self.csrf, Some(self.return_target), self.error)
    }

    /// Writes the whole response: `status`, the CSRF cookie (`set_cookie`), the page.
    pub fn write_response(
        &self,
        status: Status,
        set_cookie: &[u8],
        close: bool,
        out: &mut [u8],
    ) -> Result<usize, OutputFull> {
        form_response(
            self.action,
            self.csrf,
            Some(self.return_target),
            self.error,
            status,
            set_cookie,
            close,
            out,
        )
    }
}

/// The login page (with a return target) or the logout page (without): the same document
/// around a CSRF-protected form, written by one piece of code.
struct FormPage<'a> {
    title: &'a str,
    action: &'a str,
    csrf: &'a str,
    return_target: Option<&'a [u8]>,
    error: Option<&'a str>,
    /// The markup after the hidden fields, to the end of the document.
    rest: &'a str,
}

impl<'a> FormPage<'a> {
    fn new(
        action: &'a str,
        csrf: &'a str,
        return_target: Option<&'a [u8]>,
        error: Option<&'a str>,
    ) -> Self {
        let (title, rest) = match return_target {
            Some(_) => ("Sign in", TAIL),
            None => ("Sign out", LOGOUT_TAIL),
        };
        Self {
            title,
            action,
            csrf,
            return_target,
            error,
            rest,
        }
    }

    fn html(&self, w: &mut Html<'_>) -> Result<(), OutputFull> {
        page_start(w, self.title, "", "")?;
        if let Some(e) = self.error {
            w.raw(b"<p class=\"error\" role=\"alert\">")?;
            w.text(e.as_bytes())?;
            w.raw(b"</p>\n")?;
        }
        w.raw(b"<form method=\"post\" action=\"")?;
        w.text(self.action.as_bytes())?;
        w.raw(b"\">\n<input type=\"hidden\" name=\"csrf\" value=\"")?;
        w.text(self.csrf.as_bytes())?;
        if let Some(target) = self.return_target {
            w.raw(b"\">\n<input type=\"hidden\" name=\"return\" value=\"")?;
            w.text(target)?;
        }
        w.raw(b"\">\n")?;
        w.raw(self.rest.as_bytes())
    }
}

/// The whole response of the login page (`return_target` given) or the logout page: `status`,
/// the CSRF cookie (`set_cookie`), the page.
#[expect(
    clippy::too_many_arguments,
    reason = "one writer for both pages, called from their two write_response and the gateway"
)]
pub(super) fn form_response(
    action: &str,
    csrf: &str,
    return_target: Option<&[u8]>,
    error: Option<&str>,
    status: Status,
    set_cookie: &[u8],
    close: bool,
    out: &mut [u8],
) -> Result<usize, OutputFull> {
    let page = FormPage::new(action, csrf, return_target, error);
    html_response(status, &[set_cookie], close, out, |w| page.html(w))
}

/// Starts a page: the document head with `title`, the shared style and `extra_style`, then
/// `<main class="main_class">` and the `<h1>`.
pub(super) fn page_start(
    w: &mut Html<'_>,
    title: &str,
    main_class: &str,
    extra_style: &str,
) -> Result<(), OutputFull> {
    w.raw(DOC_START.as_bytes())?;
    w.text(title.as_bytes())?;
    w.raw(b"</title>\n<style>")?;
    w.raw(STYLE.as_bytes())?;
    w.raw(extra_style.as_bytes())?;
    w.raw(b"</style>\n</head>\n<body>\n<main")?;
    if !main_class.is_empty() {
        w.raw(b" class=\"")?;
        w.text(main_class.as_bytes())?;
        w.raw(b"\"")?;
    }
    w.raw(b">\n<h1>")?;
    w.text(title.as_bytes())?;
    w.raw(b"</h1>\n")
}

/// A whole HTML response: `status`, each of `set_cookies`, the pages' CSP, and the page
/// `html` writes (run twice: to measure it, then to write it straight after the head).
pub(super) fn html_response(
    status: Status,
    set_cookies: &[&[u8]],
    close: bool,
    out: &mut [u8],
    html: impl Fn(&mut Html<'_>) -> Result<(), OutputFull>,
) -> Result<usize, OutputFull> {
    let mut counter = Html {
        out: &mut [],
        len: 0,
        count_only: true,
    };
    html(&mut counter)?;
    let mut w = ResponseWriter::new(out, status);
    for cookie in set_cookies.iter().filter(|c| !c.is_empty()) {
        w.header("Set-Cookie", cookie);
    }
    w.header("Content-Security-Policy", PAGE_CSP);
    w.finish_with("text/html; charset=utf-8", counter.len, close, |rest| {
        let mut page = Html {
            out: rest,
            len: 0,
            count_only: false,
        };
        html(&mut page)?;
        Ok(page.len)
    })
}

/// Writes HTML into a buffer, or only counts it.
pub(super) struct Html<'o> {
    out: &'o mut [u8],
    len: usize,
    /// Only count the bytes (to learn the length before writing).
    count_only: bool,
}

impl Html<'_> {
    /// Markup, as it is.
    pub(super) fn raw(&mut self, bytes: &[u8]) -> Result<(), OutputFull> {
        if self.count_only {
            self.len += bytes.len();
            return Ok(());
        }
        let dst = self
            .out
            .get_mut(self.len..self.len + bytes.len())
            .ok_or(OutputFull)?;
        dst.copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// Escapes for both text and double-quoted attribute values.
    pub(super) fn text(&mut self, bytes: &[u8]) -> Result<(), OutputFull> {
        for &b in bytes {
            match b {
                b'&' => self.raw(b"&amp;")?,
                b'<' => self.raw(b"&lt;")?,
                b'>' => self.raw(b"&gt;")?,
                b'"' => self.raw(b"&quot;")?,
                b'\'' => self.raw(b"&#39;")?,
                _ => self.raw(&[b])?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_what_it_inserts_and_has_no_script() {
        let mut out = [0u8; MAX_LOGIN_PAGE_LEN];
        let page = LoginPage {
            action: "/_gatehouse/login",
            csrf: "tok",
            return_target: b"/a\"><script>alert(1)</script>",
            error: Some("Wrong <b>"),
        };
        let n = page.write_html(&mut out).unwrap();
        let html = core::str::from_utf8(&out[..n]).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("value=\"/a&quot;&gt;&lt;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("role=\"alert\">Wrong &lt;b&gt;</p>"),
            "{html}"
        );
        assert!(html.contains("<label for=\"username\">"));
        assert!(html.contains("autocomplete=\"current-password\""));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("action=\"/_gatehouse/login\""));
    }

    #[test]
    fn the_logout_page_is_a_button_that_posts_the_token() {
        let page = LogoutPage {
            action: "/_gatehouse/logout",
            csrf: "t\"ok",
            error: Some("Expired <b>"),
        };
        let mut out = [0u8; 4096];
        let n = page
            .write_response(Status::Ok, b"gatehouse_csrf=tok", false, &mut out)
            .unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("\r\nContent-Security-Policy: default-src 'none'"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(body.contains("<form method=\"post\" action=\"/_gatehouse/logout\">"));
        assert!(body.contains("name=\"csrf\" value=\"t&quot;ok\""));
        assert!(body.contains("<button type=\"submit\">Sign out</button>"));
        assert!(body.contains("role=\"alert\">Expired &lt;b&gt;</p>"));
        assert!(!body.contains("<script"));
        assert!(body.ends_with("</html>\n"));
    }

    #[test]
    fn the_response_measures_the_page_it_writes() {
        let page = LoginPage {
            action: "/_gatehouse/login",
            csrf: "tok",
            return_target: b"/a?x=1&y=2",
            error: None,
        };
        let mut out = [0u8; 8192];
        let n = page
            .write_response(Status::Ok, b"gatehouse_csrf=tok", false, &mut out)
            .unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(body.contains("value=\"/a?x=1&amp;y=2\""));
        assert!(body.len() < MAX_LOGIN_PAGE_LEN);
        assert_eq!(
            page.write_response(Status::Ok, b"gatehouse_csrf=tok", false, &mut out[..n - 1]),
            Err(OutputFull)
        );
    }
}
