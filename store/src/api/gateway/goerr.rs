//! The error texts of Go's `encoding/json` decoder and `encoding/base64`, which etcd's gateway
//! answers for bodies it cannot read (`invalid character 'o' in literal null (expecting
//! 'u')`, `unexpected EOF`, `illegal base64 data at input byte 4`). Pure functions.

/// Go's `json.Decoder.Decode` error for the first JSON value of `input`, or `None` if that
/// value is well formed (what follows it is not read, as with one `Decode` call).
pub fn json_syntax(input: &[u8]) -> Option<String> {
    let mut s = Scanner { input, at: 0 };
    s.value().err()
}

struct Scanner<'a> {
    input: &'a [u8],
    at: usize,
}

type Step = Result<(), String>;

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        0x80..=0xff => format!("'{}'", char::from(c)),
        _ => format!(r"'\x{c:02x}'"),
    }
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, String> {
        let c = self.peek().ok_or_else(|| "unexpected EOF".to_string())?;
        self.at += 1;
        Ok(c)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Step {
        self.skip_space();
        let c = self.next()?;
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(c),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str) -> Step {
        for expected in word.bytes().skip(1) {
            let c = self.next()?;
            if c != expected {
                let context = format!("in literal {word} (expecting {})", quote_char(expected));
                return Err(invalid(c, &context));
            }
        }
        Ok(())
    }

    fn object(&mut self) -> Step {
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_space();
            let c = self.next()?;
            if c != b'"' {
                return Err(invalid(c, "looking for beginning of object key string"));
            }
            self.string()?;
            self.skip_space();
            let c = self.next()?;
            if c != b':' {
                return Err(invalid(c, "after object key"));
            }
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                c => return Err(invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Step {
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(()),
                c => return Err(invalid(c, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Step {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Err(invalid(c, r"in \u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(invalid(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(invalid(c, "in string literal")),
                _ => {}
            }
        }
    }

    /// A number; `first` is its first character. Ends at the first character that cannot
    /// continue it (the caller judges that character), or at the end of the input.
    fn number(&mut self, first: u8) -> Step {
        let mut c = first;
        if c == b'-' {
            c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in numeric literal"));
            }
        }
        if c != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(invalid(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

/// Go's `base64.StdEncoding.DecodeString` error for `input` (`None`: it decodes), with the
/// byte offset Go reports.
pub fn base64_error(input: &str) -> Option<String> {
    let src = input.as_bytes();
    let corrupt = |at: usize| Some(format!("illegal base64 data at input byte {at}"));
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    while si < src.len() {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                return if j == 0 { None } else { corrupt(si - j) };
            }
            let c = src[si];
            si += 1;
            if valid(c) {
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' {
                return corrupt(si - 1);
            }
            match j {
                0 | 1 => return corrupt(si - 1),
                2 => {
                    while si < src.len() && newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return corrupt(src.len());
                    }
                    if src[si] != b'=' {
                        return corrupt(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            return if si < src.len() { corrupt(si) } else { None };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_read_as_gos() {
        let e = |s: &str| json_syntax(s.as_bytes());
        assert_eq!(e("not json").unwrap(), "invalid character 'o' in literal null (expecting 'u')");
        assert_eq!(e("x").unwrap(), "invalid character 'x' looking for beginning of value");
        assert_eq!(e("[").unwrap(), "unexpected EOF");
        assert_eq!(e(r#"{"key":"Zm9v""#).unwrap(), "unexpected EOF");
        assert_eq!(e(r#"{"a" 1}"#).unwrap(), "invalid character '1' after object key");
        assert_eq!(
            e(r#"{"a":1 "b"}"#).unwrap(),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            e(r#"{a:1}"#).unwrap(),
            "invalid character 'a' looking for beginning of object key string"
        );
        assert_eq!(e("-x").unwrap(), "invalid character 'x' in numeric literal");
        assert_eq!(e(r#"{"a":[1,2],"b":"\u00e9"} trailing"#), None);
    }

    #[test]
    fn base64_errors_read_as_gos() {
        assert_eq!(base64_error("Zm9v"), None);
        assert_eq!(base64_error("Zm8="), None);
        assert_eq!(base64_error(""), None);
        assert_eq!(base64_error("Zm9").unwrap(), "illegal base64 data at input byte 0");
        assert_eq!(base64_error("Zm9v==").unwrap(), "illegal base64 data at input byte 4");
        assert_eq!(base64_error("Zm-_").unwrap(), "illegal base64 data at input byte 2");
        assert_eq!(base64_error("!!not base64").unwrap(), "illegal base64 data at input byte 0");
        assert_eq!(base64_error("Zg=").unwrap(), "illegal base64 data at input byte 3");
    }
}
