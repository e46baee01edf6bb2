import { useState, type FormEvent, type KeyboardEvent } from "react";

/** The message box: typing notifications on every keystroke, Enter to send. */
export function Composer({
  onTyping,
  onSend,
  disabled,
}: {
  onTyping: (active: boolean) => void;
  onSend: (content: string) => void;
  disabled: boolean;
}) {
  const [text, setText] = useState("");

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const content = text.trim();
    if (!content) return;
    onTyping(false);
    onSend(content);
    setText("");
  };

  const keyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submit();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        data-testid="composer-input"
        rows={1}
        value={text}
        disabled={disabled}
        placeholder="Write a message…"
        maxLength={4000}
        onChange={(event) => {
          setText(event.target.value);
          // The client throttles these and sends the stop by itself.
          onTyping(event.target.value.length > 0);
        }}
        onKeyDown={keyDown}
      />
      <button data-testid="composer-send" type="submit" disabled={disabled || !text.trim()}>
        Send
      </button>
    </form>
  );
}
