import { cleanup } from "./cleanup.js";

await cleanup();
