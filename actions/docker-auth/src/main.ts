import { login } from "./login.js";

await login();
