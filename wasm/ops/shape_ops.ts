// (stub: filled by its owner)
export function registerShapeOps(): void {}
