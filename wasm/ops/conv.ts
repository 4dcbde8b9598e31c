// (stub: filled by its owner)
export function registerConv(): void {}
