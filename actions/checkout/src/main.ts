import { checkout } from "./checkout.js";

await checkout();
