export * from "./audit";
export * from "./disputes";
export * from "./events";
export * from "./evidence";
export * from "./platforms";
export * from "./reports";
export * from "./trust";
