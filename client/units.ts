/** Parses a duration like `500ms`, `10s`, `2m`, `1h`, `7d` (a bare number is seconds) into ms. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const factor =
    { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * factor);
}

/** Parses a memory size like `256m`, `1g`, `512mb` (a bare number is MiB) into MiB. */
export function parseMemoryMb(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(k|kb|m|mb|mi|mib|g|gb|gi|gib)?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? "m").toLowerCase()[0];
  const factor = unit === "k" ? 1 / 1024 : unit === "g" ? 1024 : 1;
  return Math.round(Number(match[1]) * factor);
}

/** Parses a size like `64k`, `1m`, `8MiB`, `4096` (a bare number is bytes) into bytes. */
export function parseBytes(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|k|kb|ki|kib|m|mb|mi|mib|g|gb|gi|gib)?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? "b").toLowerCase()[0];
  const factor = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1;
  return Math.round(Number(match[1]) * factor);
}
