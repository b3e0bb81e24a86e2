//! Reconciliation at the start of a run: what a crashed run left in the
//! archive tree is cleaned up before anything new is written.

use std::collections::HashSet;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use super::files::{write_sums, FileName, SUFFIX, TMP_SUFFIX};
use super::job::{io_at, rel_str, ArchiveError, Job};

impl Job<'_> {
    /// Cleans up after a crashed run: temp files go; a final file that is
    /// not in `archive_files` goes too when every row it names is still in
    /// the database (it will be written again); otherwise it is kept and
    /// reported. Touched directories get their `SHA256SUMS` rewritten from
    /// the ledger.
    pub(super) fn reconcile(&mut self, root: &Path) -> Result<(), ArchiveError> {
        let recorded: HashSet<String> = self.db.all_files()?.into_iter().map(|f| f.path).collect();
        let mut dirs = Vec::new();
        collect_dirs(root, &mut dirs).map_err(io_at(root))?;
        for dir in dirs {
            let rel_dir = rel_str(dir.strip_prefix(root).unwrap_or(&dir));
            let mut touched = false;
            for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
                let entry = entry.map_err(io_at(&dir))?;
                if !entry.file_type().map_err(io_at(&dir))?.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if name.ends_with(TMP_SUFFIX) {
                    std::fs::remove_file(&path).map_err(io_at(&path))?;
                    self.summary.leftovers_removed += 1;
                    touched = true;
                    continue;
                }
                let rel = format!("{rel_dir}/{name}");
                if !name.ends_with(SUFFIX) || recorded.contains(&rel) {
                    continue;
                }
                if self.orphan_is_still_in_db(&rel_dir, &name, &path)? {
                    std::fs::remove_file(&path).map_err(io_at(&path))?;
                    self.summary.leftovers_removed += 1;
                    touched = true;
                } else {
                    tracing::warn!(path = %rel, "archive file not in archive_files and its rows are not in the database; kept");
                    self.summary.unrecorded.push(rel);
                }
            }
            if touched {
                let mut sums = self.db.sums_for_dir(&rel_dir)?;
                write_sums(&dir, &mut sums).map_err(io_at(&dir))?;
            }
        }
        Ok(())
    }

    fn orphan_is_still_in_db(
        &self,
        rel_dir: &str,
        name: &str,
        path: &Path,
    ) -> Result<bool, ArchiveError> {
        let mut parts = rel_dir.split('/');
        let (Some(client), Some(channel), Some(parsed)) =
            (parts.next(), parts.next(), FileName::parse(name))
        else {
            return Ok(false);
        };
        let Ok(lines) = count_lines(path) else {
            return Ok(false);
        };
        let in_db = self.db.count_id_range(
            parsed.kind,
            client,
            channel,
            parsed.first_id,
            parsed.last_id,
        )?;
        Ok(in_db >= lines)
    }
}

fn count_lines(path: &Path) -> io::Result<u64> {
    let file = std::fs::File::open(path)?;
    let reader = io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut n = 0;
    for line in reader.split(b'\n') {
        line?;
        n += 1;
    }
    Ok(n)
}

/// Every directory under `root` (itself included), depth first.
fn collect_dirs(root: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    out.push(root.to_path_buf());
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_dirs(&entry.path(), out)?;
        }
    }
    Ok(())
}
