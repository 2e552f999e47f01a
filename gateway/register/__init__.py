"""The registry database: grids, officers, departments, enterprises and devices as they change."""
