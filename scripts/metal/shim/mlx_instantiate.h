// scripts/metal/check_metal.py force-includes this after metal_shim.h.
//
// MLX's instantiate_kernel (kernels/defines.h) expands to
//   template [[host_name(name)]] [[kernel]] decltype(func<...>) func<...>;
// C++ allows no attributes after `template` in an explicit instantiation, so
// read defines.h first (it is #pragma once, later includes are no-ops) and
// define the macro again without them. It stays an explicit instantiation
// definition: clang instantiates, and so checks, every kernel template body
// for every set of template arguments that MLX instantiates.

#pragma once

#include "mlx/backend/metal/kernels/defines.h"

#undef instantiate_kernel
#define instantiate_kernel(name, func, ...) \
  template decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;
