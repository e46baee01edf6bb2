import { useEffect, useState } from "react";
import type { ConnectionSnapshot } from "relaywire";

/** Re-renders every `ms` while `active`, for countdowns. */
function useNow(active: boolean, ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [active, ms]);
  return now;
}

const LABELS: Record<ConnectionSnapshot["status"], string> = {
  idle: "Starting…",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  unauthorized: "Signed out",
  closed: "Disconnected",
  failed: "Connection failed",
};

/** The live connection status, with the retry countdown while reconnecting. */
export function ConnectionBadge({ snapshot, onRetry }: { snapshot: ConnectionSnapshot; onRetry: () => void }) {
  const waiting = snapshot.nextRetryAt !== null;
  const now = useNow(waiting, 250);
  let label = LABELS[snapshot.status];
  if (snapshot.status === "reconnecting" && snapshot.nextRetryAt !== null) {
    const seconds = Math.max(0, Math.ceil((snapshot.nextRetryAt - now) / 1000));
    label = seconds > 0 ? `Reconnecting in ${seconds}s` : "Reconnecting…";
  }
  const stopped = ["closed", "failed", "unauthorized"].includes(snapshot.status);
  return (
    <div className={`badge ${snapshot.status}`} data-testid="connection-status" data-status={snapshot.status}>
      <span className="badge-dot" />
      {label}
      {snapshot.status !== "open" && snapshot.pending > 0 && (
        <span className="pending">{snapshot.pending} waiting</span>
      )}
      {(waiting || stopped) && snapshot.status !== "unauthorized" && (
        <button className="link" onClick={onRetry}>
          Retry now
        </button>
      )}
    </div>
  );
}
