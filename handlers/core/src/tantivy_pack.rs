//! A tantivy index held in RAM, packed into one tar object and unpacked again: how the
//! approvals and the incident memory keep an index on object storage, so one GET loads it.

use std::io::Read;
use std::path::{Path, PathBuf};

use tantivy::directory::{RamDirectory, TerminatingWrite};
use tantivy::index::SegmentComponent;
use tantivy::{Directory, Index};

/// The index's files (its `meta.json` and every searchable segment) in one tar archive.
/// The error names the file that could not be read.
pub fn pack(index: &Index, directory: &RamDirectory) -> Result<Vec<u8>, String> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from("meta.json")];
    let metas = index
        .searchable_segment_metas()
        .map_err(|e| format!("segments: {e}"))?;
    for meta in &metas {
        for component in [
            SegmentComponent::Postings,
            SegmentComponent::Positions,
            SegmentComponent::FastFields,
            SegmentComponent::FieldNorms,
            SegmentComponent::Terms,
            SegmentComponent::Store,
            SegmentComponent::Delete,
        ] {
            let path = meta.relative_path(component);
            if directory.exists(&path).unwrap_or(false) {
                files.push(path);
            }
        }
    }
    let mut archive = tar::Builder::new(Vec::new());
    for path in files {
        // Raw bytes, footers included, so that unpacking restores the files exactly.
        let bytes = if path == Path::new("meta.json") {
            directory.atomic_read(&path).map_err(|e| e.to_string())
        } else {
            directory
                .open_read(&path)
                .map_err(|e| e.to_string())
                .and_then(|slice| slice.read_bytes().map_err(|e| e.to_string()))
                .map(|bytes| bytes.as_slice().to_vec())
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, &path, bytes.as_slice())
            .map_err(|e| format!("cannot archive {}: {e}", path.display()))?;
    }
    archive
        .into_inner()
        .map_err(|e| format!("cannot finish the archive: {e}"))
}

/// The files of a [`pack`] in a new RAM directory, opened as an index.
pub fn unpack(pack: &[u8]) -> Result<(RamDirectory, Index), String> {
    let directory = RamDirectory::create();
    let mut archive = tar::Archive::new(pack);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("archive entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("archive entry name: {e}"))?
            .into_owned();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        write_file(&directory, &path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let index = Index::open(directory.clone()).map_err(|e| format!("cannot open: {e}"))?;
    Ok((directory, index))
}

fn write_file(directory: &RamDirectory, path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    if path == Path::new("meta.json") {
        return directory
            .atomic_write(path, bytes)
            .map_err(|e| e.to_string());
    }
    let mut writer = directory.open_write(path).map_err(|e| e.to_string())?;
    writer.write_all(bytes).map_err(|e| e.to_string())?;
    writer.terminate().map_err(|e| e.to_string())
}
