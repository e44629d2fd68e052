export * from "./audit";
export * from "./disputes";
export * from "./platforms";
export * from "./reports";
export * from "./events";
