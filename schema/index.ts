export * from "./audit";
export * from "./disputes";
export * from "./events";
export * from "./platforms";
export * from "./reports";
