export * from "./audit";
export * from "./platforms";
export * from "./reports";
