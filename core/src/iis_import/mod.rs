//! `fastgate import-iis`: turns an IIS site's FastCGI setup (web.config and
//! optionally applicationHost.config) into an equivalent fastgate.toml.
//!
//! [`read`] parses the XML into the few elements that matter
//! (`<fastCgi><application>`, FastCGI `<handlers>`, `<appSettings>`); [`map`]
//! turns each group of handlers sharing a `scriptProcessor` into one
//! `[[app]]`, translating Windows programs to their Linux launchers. The
//! output is text for a person to review, so whatever has no equivalent is
//! kept as a `#` comment naming the IIS setting and its file and line rather
//! than dropped. This module writes nothing and runs nothing.

mod map;
mod read;

use std::fmt;
use std::path::Path;

/// An IIS file that cannot be read or is not well-formed XML.
#[derive(Debug)]
pub struct ImportError {
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ImportError {}

/// Reads `web_config` (and `app_host`, IIS's server-wide file holding the
/// `<fastCgi>` section) and returns the fastgate.toml text.
pub fn import(web_config: &Path, app_host: Option<&Path>) -> Result<String, ImportError> {
    let web = read::read_file(web_config)?;
    let host = app_host.map(read::read_file).transpose()?;
    let names = map::Sources {
        web: web_config.display().to_string(),
        host: app_host.map(|p| p.display().to_string()),
    };
    Ok(map::render(&names, &web, host.as_ref()))
}

/// [`import`] on texts, for tests.
#[cfg(test)]
pub(crate) fn import_str(web: &str, host: Option<&str>) -> Result<String, ImportError> {
    let web_file = read::parse("web.config", web)?;
    let host_file = host
        .map(|h| read::parse("applicationHost.config", h))
        .transpose()?;
    let names = map::Sources {
        web: "web.config".into(),
        host: host.map(|_| "applicationHost.config".into()),
    };
    Ok(map::render(&names, &web_file, host_file.as_ref()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOST: &str = r#"<configuration><system.webServer>
<fastCgi>
  <application fullPath="C:\PHP\php-cgi.exe" instanceMaxRequests="10000" activityTimeout="70" protocol="Tcp" stderrMode="IgnoreAndReturn200">
    <environmentVariables><environmentVariable name="PHP_FCGI_MAX_REQUESTS" value="10000"/></environmentVariables>
  </application>
  <application fullPath="C:\Ruby\ruby.exe" arguments="C:\app\app.rb"/>
</fastCgi>
<handlers><add name="inherited" path="*.php5" modules="FastCgiModule" scriptProcessor="C:\PHP\php-cgi.exe"/></handlers>
</system.webServer></configuration>"#;

    fn toml_of(web: &str, host: Option<&str>) -> (String, toml::Table) {
        let text = import_str(web, host).unwrap();
        let table = text
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, table)
    }

    fn first_app(t: &toml::Table) -> &toml::Table {
        t["app"].as_array().unwrap()[0].as_table().unwrap()
    }

    #[test]
    fn php_handler_and_application_become_one_app() {
        let web = r#"<configuration><system.webServer><handlers>
<add name="PHP via FastCGI" path="*.php" verb="GET, POST" modules="FastCgiModule" scriptProcessor="c:\php\PHP-CGI.exe" resourceType="File"/>
</handlers></system.webServer></configuration>"#;
        let (text, t) = toml_of(web, Some(HOST));
        let apps = t["app"].as_array().unwrap();
        assert_eq!(apps.len(), 1, "{text}");
        let app = first_app(&t);
        assert_eq!(app["name"].as_str(), Some("PHP_via_FastCGI"));
        assert_eq!(app["launcher"].as_str(), Some("php"));
        // The inherited *.php5 handler shares the program, so the pool.
        assert_eq!(app["handles"].as_array().unwrap().len(), 2, "{text}");
        assert_eq!(app["verbs"].as_array().unwrap()[1].as_str(), Some("POST"));
        assert_eq!(app["resource_type"].as_str(), Some("file"));
        assert_eq!(app["instance_max_requests"].as_integer(), Some(10000));
        assert_eq!(app["activity_timeout"].as_str(), Some("70s"));
        assert_eq!(app["protocol"].as_str(), Some("tcp"));
        assert_eq!(app["stderr_mode"].as_str(), Some("ignore-and-return-200"));
        assert_eq!(app["env"]["PHP_FCGI_MAX_REQUESTS"].as_str(), Some("10000"));
        assert_eq!(t["server"]["root"].as_str(), Some("www"));
        // The Ruby application has no handler: named, not imported.
        assert!(
            text.contains("# not mapped: <fastCgi><application fullPath=C:\\Ruby\\ruby.exe|C:\\app\\app.rb> (applicationHost.config:6)"),
            "{text}"
        );
    }

    #[test]
    fn clear_and_remove_drop_inherited_handlers() {
        let web = r#"<configuration><system.webServer><handlers><remove name="inherited"/></handlers></system.webServer></configuration>"#;
        let (text, t) = toml_of(web, Some(HOST));
        assert!(t.get("app").is_none(), "{text}");
        let web = r#"<configuration><system.webServer><handlers><clear/></handlers></system.webServer></configuration>"#;
        let (_, t) = toml_of(web, Some(HOST));
        assert!(t.get("app").is_none());
    }

    #[test]
    fn unknown_program_keeps_its_name_and_portable_arguments() {
        let web = r#"<configuration><system.webServer><handlers>
<add name="rb" path="*.rb" modules="FastCgiModule" scriptProcessor="C:\Ruby\ruby.exe|C:\app\app.rb"/>
</handlers></system.webServer></configuration>"#;
        let (text, t) = toml_of(web, Some(HOST));
        let app = first_app(&t);
        assert_eq!(app["command"].as_str(), Some("ruby"));
        assert!(app.get("args").is_none());
        assert!(
            text.contains("# not mapped: arguments C:\\app\\app.rb"),
            "{text}"
        );
    }

    #[test]
    fn wfastcgi_settings_become_django_options_and_app_settings_win() {
        let host = r#"<configuration><system.webServer><fastCgi>
<application fullPath="C:\py\python.exe" arguments="C:\py\wfastcgi.py" maxInstances="0">
<environmentVariables>
<environmentVariable name="PYTHONPATH" value="C:\old"/>
<environmentVariable name="WSGI_HANDLER" value="old.app"/>
</environmentVariables></application></fastCgi></system.webServer></configuration>"#;
        let web = r#"<configuration><system.webServer><handlers>
<add name="py" path="*" verb="*" modules="FastCgiModule" scriptProcessor="C:\py\python.exe|C:\py\wfastcgi.py" resourceType="Unspecified"/>
</handlers></system.webServer><appSettings>
<add key="WSGI_HANDLER" value="mysite.wsgi.application"/>
<add key="PYTHONPATH" value="C:\site;lib\extra"/>
<add key="WSGI_RESTART_FILE_REGEX" value=".*\.py$"/>
</appSettings></configuration>"#;
        let (text, t) = toml_of(web, Some(host));
        let app = first_app(&t);
        assert_eq!(app["launcher"].as_str(), Some("django"));
        assert_eq!(app["max_instances"].as_integer(), Some(0));
        assert!(app.get("handles").is_none(), "{text}");
        let options = app["options"].as_table().unwrap();
        assert_eq!(
            options["wsgi_handler"].as_str(),
            Some("mysite.wsgi.application")
        );
        assert_eq!(options["python_path"].as_str(), Some(".:lib/extra"));
        assert!(
            text.contains("# not mapped: WSGI_RESTART_FILE_REGEX"),
            "{text}"
        );
    }

    #[test]
    fn unmappable_handlers_are_comments_and_the_output_stays_valid() {
        let web = r#"<configuration><system.webServer><handlers>
<add name="rb" path="app.rb" modules="FastCgiModule" scriptProcessor="C:\Ruby\ruby.exe"/>
<add name="none" path="*.x" modules="FastCgiModule"/>
</handlers></system.webServer></configuration>"#;
        let (text, t) = toml_of(web, None);
        assert!(t.get("app").is_none(), "{text}");
        assert!(
            text.contains("# not mapped: no handler path of rb"),
            "{text}"
        );
        assert!(text.contains("# command = \"ruby\""), "{text}");
        assert!(
            text.contains(
                "# not mapped: FastCGI handler none (web.config:3) names no scriptProcessor"
            ),
            "{text}"
        );
    }

    #[test]
    fn unparsable_numbers_are_comments() {
        let host = r#"<configuration><fastCgi><application fullPath="C:\PHP\php-cgi.exe" maxInstances="many"/></fastCgi></configuration>"#;
        let web = r#"<configuration><system.webServer><handlers>
<add name="php" path="*.php" modules="FastCgiModule" scriptProcessor="C:\PHP\php-cgi.exe"/>
</handlers></system.webServer></configuration>"#;
        let (text, t) = toml_of(web, Some(host));
        assert!(first_app(&t).get("max_instances").is_none());
        assert!(
            text.contains("# not mapped: maxInstances = many (not a number)"),
            "{text}"
        );
    }
}
