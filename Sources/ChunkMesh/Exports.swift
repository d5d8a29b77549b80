// The sans-IO core (MeshCore) comes with the drivers: a user of the mesh imports ChunkMesh alone.
@_exported import MeshCore
