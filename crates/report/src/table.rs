//! A CSV table with a header, read by column name.

use crate::{Error, Result};
use std::path::Path;

/// A CSV with a header, read by column name; empty cells are `None`.
///
/// Cells may be quoted (RFC 4180: `"a, b"`, `""` for a quote, newlines inside quotes). Every
/// row must have as many cells as the header, and header names must be distinct.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads and checks the whole file. Blank lines are skipped.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Csv`] (with the line) when it is not
    /// UTF-8, has no header, repeats a column name, has an unterminated quote, or a row whose
    /// number of cells differs from the header's.
    pub fn read(path: &Path) -> Result<Table> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line =
                1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            Error::Csv { path: path.to_owned(), line, message: "not UTF-8 text (is this a CSV file?)".into() }
        })?;
        Table::parse(&text).map_err(|(line, message)| Error::Csv { path: path.to_owned(), line, message })
    }

    /// Parses CSV text; errors carry the 1-based line where the record starts.
    fn parse(text: &str) -> std::result::Result<Table, ParseError> {
        let mut records =
            records(text)?.into_iter().filter(|r| !(r.cells.len() == 1 && r.cells[0].trim().is_empty()));
        let headers = records.next().ok_or((1, "empty file: expected a header line".to_owned()))?.cells;
        let headers: Vec<String> = headers.into_iter().map(|h| h.trim().to_owned()).collect();
        for (i, h) in headers.iter().enumerate() {
            if h.is_empty() {
                return Err((1, format!("column {} of the header has no name", i + 1)));
            }
            if headers[..i].contains(h) {
                return Err((1, format!("column `{h}` appears twice in the header")));
            }
        }
        let mut rows = Vec::new();
        for Record { line, cells: record } in records {
            if record.len() != headers.len() {
                return Err((
                    line,
                    format!("{} cells where the header has {} columns", record.len(), headers.len()),
                ));
            }
            rows.push(record);
        }
        Ok(Table { headers, rows })
    }

    /// The column `name` as numbers: empty cells, and cells that are not finite numbers,
    /// are `None`. `None` when the table has no such column.
    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let i = self.index(name)?;
        Some(self.rows.iter().map(|r| r[i].trim().parse::<f64>().ok().filter(|v| v.is_finite())).collect())
    }

    /// The column `name` as text, as written (quotes removed). `None` when there is no such column.
    pub fn text(&self, name: &str) -> Option<Vec<&str>> {
        let i = self.index(name)?;
        Some(self.rows.iter().map(|r| r[i].as_str()).collect())
    }

    /// The number of rows, not counting the header.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows (a header only).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the table has a column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.index(name).is_some()
    }

    /// The column names, in order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Row `i`'s cells, in the order of [`Table::headers`].
    pub fn row(&self, i: usize) -> Option<&[String]> {
        self.rows.get(i).map(Vec::as_slice)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }
}

/// One CSV record: its cells and the 1-based line it starts on.
struct Record {
    line: usize,
    cells: Vec<String>,
}

/// A parse failure: the 1-based line and what is wrong.
type ParseError = (usize, String);

/// Splits CSV text into records of cells, each with the 1-based line it starts on.
fn records(text: &str) -> std::result::Result<Vec<Record>, ParseError> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut quote_line = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => {
                quoted = true;
                quote_line = line;
            }
            ',' => record.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut cell));
                out.push(Record { line: start, cells: std::mem::take(&mut record) });
                line += 1;
                start = line;
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err((quote_line, "a quoted cell is never closed".into()));
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        out.push(Record { line: start, cells: record });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_empty_cells_and_crlf() {
        let t = Table::parse("a,b,c\r\n1,,\"x, \"\"y\"\"\"\r\n\n2.5,nan,z\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.column("a").unwrap(), vec![Some(1.0), Some(2.5)]);
        assert_eq!(t.column("b").unwrap(), vec![None, None]);
        assert_eq!(t.text("c").unwrap(), vec!["x, \"y\"", "z"]);
        assert!(t.column("d").is_none());
        assert!(t.has("c") && !t.has("d"));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(Table::parse("a,b\n1,2\n3\n").unwrap_err().0, 3);
        assert_eq!(Table::parse("").unwrap_err().0, 1);
        assert!(Table::parse("a,a\n").unwrap_err().1.contains("twice"));
        assert_eq!(Table::parse("a\n\"open\n").unwrap_err().0, 2);
    }
}
