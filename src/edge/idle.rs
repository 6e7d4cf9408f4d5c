//! Gives memory back once the edge has no session: the allocator's free pages (`malloc_trim`), and the page-table
//! entries of the binary's code (`MADV_DONTNEED` on its read-only executable mappings), so an idle edge's resident
//! set is what it runs while idle, not everything a pgbench run or the start-up once touched.
//!
//! Dropping code pages is safe because an executable mapping of the binary is private and never written: the
//! kernel maps the same bytes back from the page cache on the next touch (a minor fault, no disk read while the
//! page is cached). Writable or relocated mappings (`.data`, RELRO) are never touched.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Trims at most this often while sessions come and go (a connect-per-transaction load reaches zero often).
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Address ranges `[start, end)` of the executable (`r-xp`) mappings of `exe` in a `/proc/<pid>/maps` text.
pub fn code_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode, then the path (which may contain spaces).
            let path = line.splitn(6, char::is_whitespace).nth(5).map(str::trim)?;
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start < end).then_some((start, end))
        })
        .collect()
}

/// Hands free heap pages and the binary's code pages back to the kernel (Linux with glibc; elsewhere nothing).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory of the allocator to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        drop_code_pages();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn drop_code_pages() {
    let (Ok(maps), Ok(exe)) = (
        std::fs::read_to_string("/proc/self/maps"),
        std::fs::read_link("/proc/self/exe"),
    ) else {
        return;
    };
    let Some(exe) = exe.to_str() else { return };
    for (start, end) in code_ranges(&maps, exe) {
        // SAFETY: the range is a private, read-only, executable file mapping of this binary: its pages are never
        // modified, so dropping them only makes the next access fault the identical bytes back in from the file.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Calls [`give_back`] each time `idle` is notified (the last session ended), at most every 500 ms, until `stop`.
pub async fn run(idle: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = idle.notified() => {}
        }
        // Inline: reading the maps and trimming take about a millisecond, less than a blocking thread would cost
        // (its stack and its start would count in the very RSS this trims).
        give_back();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MIN_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0200000 r--p 00000000 08:01 1234 /usr/bin/pgha
55d0c0200000-55d0c1000000 r-xp 00200000 08:01 1234 /usr/bin/pgha
55d0c1000000-55d0c1400000 r--p 01000000 08:01 1234 /usr/bin/pgha
55d0c1400000-55d0c1420000 rw-p 01400000 08:01 1234 /usr/bin/pgha
7f00000000-7f00100000 r-xp 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00200000-7f00300000 r-xp 00000000 08:01 77 /opt/my tools/pgha
7f00400000-7f00500000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn only_the_binarys_executable_mappings() {
        let cases: [(&str, Vec<(usize, usize)>); 3] = [
            ("/usr/bin/pgha", vec![(0x55d0c0200000, 0x55d0c1000000)]),
            ("/opt/my tools/pgha", vec![(0x7f00200000, 0x7f00300000)]),
            ("/usr/bin/other", vec![]),
        ];
        for (exe, want) in cases {
            assert_eq!(code_ranges(MAPS, exe), want, "{exe}");
        }
        assert_eq!(code_ranges("garbage\n\n-", "/usr/bin/pgha"), vec![]);
    }

    #[test]
    fn giving_back_keeps_the_process_running() {
        // The code of this very test is dropped and faulted back in.
        give_back();
        give_back();
        assert_eq!(code_ranges("", "x"), vec![]);
    }
}
