// The chat protocol's provider and hooks: typed by its descriptor, so every hook
// narrows on the chat's own message types.
import { chatProtocol } from "relaywire/chat";
import { createRelaywire } from "relaywire/react";

export const { RelaywireProvider, useConnection, useMessage, useRelaywire } = createRelaywire(chatProtocol);
