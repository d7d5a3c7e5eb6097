import { logout } from "./logout.js";

await logout();
