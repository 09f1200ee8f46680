//! Reports in the state store: each run writes `reports/YYYY-MM-DD/<HHMMSS.mmm>Z.{json,md,html}`
//! with create-only writes (as audit records are: a report once written is never changed),
//! then points `reports/latest.json` at it. The laptop app and `report show` read the
//! pointer; the next scan reads it to compute deltas.

use chrono::{DateTime, NaiveDate, Utc};
use escher_core::scan::MorningReport;
use escher_core::store::{create_once, Created};
use opendal::{ErrorKind, Operator};
use serde::{Deserialize, Serialize};

use crate::render::{render_html, render_markdown, RenderError};

const LATEST: &str = "reports/latest.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("report store {store}: {operation} {path} failed: {source}; check the store URI and that this role may read and write it")]
    Storage {
        store: String,
        operation: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
    #[error("report {path} already exists and reports are never overwritten; rerun the scan for a new one")]
    Exists { path: String },
    #[error("report store {store}: {path} is not a report this version reads: {message}")]
    Unreadable {
        store: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Where one report's three files are (paths in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFiles {
    pub date: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub json: String,
    pub markdown: String,
    pub html: String,
}

#[derive(Debug, Clone)]
pub struct ReportStore {
    operator: Operator,
    location: String,
}

impl ReportStore {
    pub fn new(operator: Operator, location: impl Into<String>) -> Self {
        ReportStore {
            operator,
            location: location.into(),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// The state store the reports are in (the report queue is beside them).
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    fn storage(&self, operation: &'static str, path: &str, e: opendal::Error) -> StoreError {
        StoreError::Storage {
            store: self.location.clone(),
            operation,
            path: path.to_string(),
            source: Box::new(e),
        }
    }

    async fn create(&self, path: &str, body: Vec<u8>) -> Result<(), StoreError> {
        match create_once(&self.operator, path, body).await {
            Ok(Created::Written) => Ok(()),
            Ok(Created::AlreadyExists) => Err(StoreError::Exists {
                path: path.to_string(),
            }),
            Err(e) => Err(self.storage("write", path, e)),
        }
    }

    /// Renders and writes the report's JSON, Markdown and HTML once, then moves the latest
    /// pointer to it.
    pub async fn write(&self, report: &MorningReport) -> Result<ReportFiles, StoreError> {
        let stem = format!(
            "reports/{}/{}Z",
            report.report_date.format("%Y-%m-%d"),
            report.generated_at.format("%H%M%S%.3f")
        );
        let files = ReportFiles {
            date: report.report_date,
            generated_at: report.generated_at,
            json: format!("{stem}.json"),
            markdown: format!("{stem}.md"),
            html: format!("{stem}.html"),
        };
        let json =
            serde_json::to_vec_pretty(report).map_err(|e| self.unreadable(&files.json, e))?;
        let markdown = render_markdown(report)?;
        let html = render_html(report)?;
        // The JSON last: a report listed by its JSON always has its renderings.
        self.create(&files.markdown, markdown.into_bytes()).await?;
        self.create(&files.html, html.into_bytes()).await?;
        self.create(&files.json, json).await?;
        let pointer = serde_json::to_vec_pretty(&files).map_err(|e| self.unreadable(LATEST, e))?;
        self.operator
            .write(LATEST, pointer)
            .await
            .map_err(|e| self.storage("write", LATEST, e))?;
        Ok(files)
    }

    fn unreadable(&self, path: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unreadable {
            store: self.location.clone(),
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match escher_core::store::read_whole(&self.operator, path).await {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.storage("read", path, e)),
        }
    }

    /// The files of the latest report; `None` before the first scan.
    pub async fn latest_files(&self) -> Result<Option<ReportFiles>, StoreError> {
        let Some(bytes) = self.read_optional(LATEST).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.unreadable(LATEST, e))
    }

    /// The latest report; `None` before the first scan.
    pub async fn latest(&self) -> Result<Option<MorningReport>, StoreError> {
        match self.latest_files().await? {
            Some(files) => self.report(&files).await.map(Some),
            None => Ok(None),
        }
    }

    /// The last report written on `date`.
    pub async fn files_on(&self, date: NaiveDate) -> Result<Option<ReportFiles>, StoreError> {
        let folder = format!("reports/{}/", date.format("%Y-%m-%d"));
        let entries = match self.operator.list(&folder).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.storage("list", &folder, e)),
        };
        let Some(json) = entries
            .iter()
            .map(|e| e.path().to_string())
            .filter(|p| p.ends_with(".json"))
            .max()
        else {
            return Ok(None);
        };
        let report = self.read_report(&json).await?;
        let stem = json.trim_end_matches(".json");
        Ok(Some(ReportFiles {
            date,
            generated_at: report.generated_at,
            markdown: format!("{stem}.md"),
            html: format!("{stem}.html"),
            json,
        }))
    }

    pub async fn report(&self, files: &ReportFiles) -> Result<MorningReport, StoreError> {
        self.read_report(&files.json).await
    }

    async fn read_report(&self, path: &str) -> Result<MorningReport, StoreError> {
        let bytes = self.read(path).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(path, e))
    }

    /// One stored file, as written.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        self.read_optional(path)
            .await?
            .ok_or_else(|| self.unreadable(path, "it is listed but gone"))
    }
}
