/**
 * Progress of a back-fill: on a terminal one line redrawn in place (a bar, rows/s, ETA and the
 * counts); elsewhere (CI, a log file) a plain line every few seconds, so a log never fills with
 * carriage returns.
 */

export interface Counts {
  created: number;
  present: number;
  rejected: number;
}

export interface Progress {
  update(rowsDone: number, counts: Counts): void;
  done(rowsDone: number, counts: Counts): void;
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return "--:--";
  }
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function progress(options: {
  stream: NodeJS.WriteStream;
  total: number | null;
  /** Rows already done before this run (a resumed back-fill): not counted in the rate. */
  startRows: number;
  intervalMs?: number;
  /** A dry run counts rows that would be sent and rows that would be rejected. */
  dryRun?: boolean;
}): Progress {
  const { stream, total } = options;
  const tty = stream.isTTY === true;
  const interval = options.intervalMs ?? (tty ? 100 : 2_000);
  const started = Date.now();
  let last = 0;
  let printedRows = -1;
  const line = (rows: number, c: Counts) => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? (rows - options.startRows) / elapsed : 0;
    const counts = options.dryRun
      ? `valid ${c.created} · invalid ${c.rejected}`
      : `created ${c.created} · already present ${c.present} · rejected ${c.rejected}`;
    if (total === null) {
      return `${rows} rows · ${Math.round(rate)} rows/s · ${counts}`;
    }
    const share = total === 0 ? 1 : Math.min(1, rows / total);
    const left = rate > 0 ? (total - rows) / rate : Number.NaN;
    const pct = `${String(Math.floor(share * 100)).padStart(3)}%`;
    if (!tty) {
      return `${pct} ${rows}/${total} rows · ${Math.round(rate)} rows/s · ETA ${eta(left)} · ${counts}`;
    }
    const width = 24;
    const filled = Math.round(share * width);
    const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
    return `${bar} ${pct} ${rows}/${total} · ${Math.round(rate)} rows/s · ETA ${eta(left)} · ${counts}`;
  };
  return {
    update(rows, counts) {
      const now = Date.now();
      if (now - last < interval) {
        return;
      }
      last = now;
      printedRows = rows;
      stream.write(tty ? `\r\x1b[2K${line(rows, counts)}` : `${line(rows, counts)}\n`);
    },
    done(rows, counts) {
      if (!tty && rows === printedRows) {
        return;
      }
      stream.write(tty ? `\r\x1b[2K${line(rows, counts)}\n` : `${line(rows, counts)}\n`);
    },
  };
}
