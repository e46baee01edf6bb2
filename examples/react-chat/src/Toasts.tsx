/** A notification or system notice on screen. */
export interface Toast {
  key: number;
  kind: "info" | "warning" | "error";
  title: string;
  body: string;
}

export function Toasts({ toasts }: { toasts: Toast[] }) {
  return (
    <div className="toasts" aria-live="polite">
      {toasts.map((toast) => (
        <div key={toast.key} className={`toast ${toast.kind}`} data-testid="toast">
          <strong>{toast.title}</strong>
          <div>{toast.body}</div>
        </div>
      ))}
    </div>
  );
}
