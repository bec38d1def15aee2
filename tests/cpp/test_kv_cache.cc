// KVCache (csrc/src/decoder/kv_cache.cc): layout, beam reorder and broadcast, argument
// errors, and memory reuse across windows.
#include <algorithm>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"
#include "whisper_genio/kv_cache.h"

using namespace whisper_genio;

namespace {

// A value that identifies (layer, k/v, beam, position, feature) uniquely.
float tag(int layer, int kv, int beam, int pos, int i) {
  return static_cast<float>((((layer * 2 + kv) * 16 + beam) * 64 + pos) * 32 + i);
}

void fill(KVCache& c, int positions) {
  for (int l = 0; l < c.n_layer(); ++l) {
    for (int b = 0; b < c.beams(); ++b) {
      for (int p = 0; p < positions; ++p) {
        for (int i = 0; i < c.d(); ++i) {
          c.keys(l, b)[p * c.d() + i] = tag(l, 0, b, p, i);
          c.values(l, b)[p * c.d() + i] = tag(l, 1, b, p, i);
        }
      }
    }
  }
}

// Beam b of the cache holds the history that beam origin[b] had when fill() ran: every
// position < length, keys and values, every layer.
int count_mismatches(const KVCache& c, const std::vector<int>& origin) {
  int bad = 0;
  for (int l = 0; l < c.n_layer(); ++l) {
    for (int b = 0; b < c.beams(); ++b) {
      for (int p = 0; p < c.length(); ++p) {
        for (int i = 0; i < c.d(); ++i) {
          bad += c.keys(l, b)[p * c.d() + i] != tag(l, 0, origin[static_cast<size_t>(b)], p, i);
          bad += c.values(l, b)[p * c.d() + i] != tag(l, 1, origin[static_cast<size_t>(b)], p, i);
        }
      }
    }
  }
  return bad;
}

}  // namespace

TEST(KvCache, ResetShapesAndRejectsBadArguments) {
  KVCache c;
  ASSERT_OK(c.reset(2, 3, 10, 4));
  EXPECT_EQ(c.n_layer(), 2);
  EXPECT_EQ(c.beams(), 3);
  EXPECT_EQ(c.capacity(), 10);
  EXPECT_EQ(c.d(), 4);
  EXPECT_EQ(c.length(), 0);
  EXPECT_EQ(c.bytes(), 2u * (2 * 2 * 3 * 10 * 4) * sizeof(float));  // data + spare
  c.set_length(5);
  ASSERT_OK(c.reset(2, 3, 10, 4));
  EXPECT_EQ(c.length(), 0) << "reset empties the cache";
  const std::vector<std::vector<int>> bad = {{0, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 0}, {-1, 1, 1, 1},
                                            {1, -2, 1, 1}};
  for (const auto& args : bad) {
    EXPECT_STATUS(c.reset(args[0], args[1], args[2], args[3]), StatusCode::kInvalidArgument)
        << args[0] << " " << args[1] << " " << args[2] << " " << args[3];
  }
}

// Per layer: K then V, each [beams, capacity, d]; a beam's history is contiguous and no two
// (layer, kv, beam) regions overlap.
TEST(KvCache, Layout) {
  KVCache c;
  ASSERT_OK(c.reset(3, 4, 7, 5));
  const ptrdiff_t beam_stride = 7 * 5;
  for (int l = 0; l < 3; ++l) {
    for (int b = 0; b + 1 < 4; ++b) {
      EXPECT_EQ(c.keys(l, b + 1) - c.keys(l, b), beam_stride);
      EXPECT_EQ(c.values(l, b + 1) - c.values(l, b), beam_stride);
    }
    EXPECT_EQ(c.values(l, 0) - c.keys(l, 0), 4 * beam_stride) << "V follows the K of all beams";
    if (l + 1 < 3) {
      EXPECT_EQ(c.keys(l + 1, 0) - c.keys(l, 0), 2 * 4 * beam_stride);
    }
  }
  const KVCache& cc = c;
  EXPECT_EQ(cc.keys(1, 2), c.keys(1, 2));
  EXPECT_EQ(cc.values(2, 3), c.values(2, 3));
  fill(c, 7);  // every position: any overlap would overwrite an earlier tag
  c.set_length(7);
  std::vector<int> id(4);
  std::iota(id.begin(), id.end(), 0);
  EXPECT_EQ(count_mismatches(c, id), 0);
}

TEST(KvCache, ReorderWithDuplicates) {
  KVCache c;
  ASSERT_OK(c.reset(2, 4, 12, 6));
  fill(c, 12);
  c.set_length(9);
  ASSERT_OK(c.reorder({2, 2, 0, 1}));
  EXPECT_EQ(count_mismatches(c, {2, 2, 0, 1}), 0);
  EXPECT_EQ(c.length(), 9);
  // A second reorder composes with the first: beam b now holds origin[source[b]].
  ASSERT_OK(c.reorder({3, 0, 0, 2}));
  EXPECT_EQ(count_mismatches(c, {1, 2, 2, 0}), 0);
}

TEST(KvCache, ReorderEveryPermutationOfFour) {
  std::vector<int> perm = {0, 1, 2, 3};
  int checked = 0;
  do {
    KVCache c;
    ASSERT_OK(c.reset(2, 4, 5, 3));
    fill(c, 5);
    c.set_length(5);
    ASSERT_OK(c.reorder(perm));
    EXPECT_EQ(count_mismatches(c, perm), 0) << "permutation " << testing::PrintToString(perm);
    ++checked;
  } while (std::next_permutation(perm.begin(), perm.end()));
  EXPECT_EQ(checked, 24);
}

TEST(KvCache, ReorderRandomSequencesTrackAModel) {
  wg_test::Rng rng(5);
  KVCache c;
  ASSERT_OK(c.reset(1, 5, 8, 4));
  fill(c, 8);
  c.set_length(8);
  std::vector<int> origin = {0, 1, 2, 3, 4};
  for (int step = 0; step < 50; ++step) {
    std::vector<int> source(5);
    for (int& s : source) s = rng.uniform_int(0, 4);
    ASSERT_OK(c.reorder(source));
    std::vector<int> next(5);
    for (int b = 0; b < 5; ++b) next[b] = origin[static_cast<size_t>(source[b])];
    origin = next;
    ASSERT_EQ(count_mismatches(c, origin), 0) << "step " << step << " source " << testing::PrintToString(source);
  }
}

TEST(KvCache, IdentityReorderIsANoOp) {
  KVCache c;
  ASSERT_OK(c.reset(2, 3, 6, 4));
  fill(c, 6);
  c.set_length(4);
  std::vector<float> before(c.keys(0, 0), c.keys(0, 0) + 2 * 2 * 3 * 6 * 4);  // the whole buffer
  ASSERT_OK(c.reorder({0, 1, 2}));
  std::vector<float> after(c.keys(0, 0), c.keys(0, 0) + before.size());
  EXPECT_TRUE(before == after) << "identity reorder changed the cache";
}

TEST(KvCache, ReorderArgumentErrorsLeaveTheCacheAlone) {
  KVCache c;
  ASSERT_OK(c.reset(2, 3, 6, 4));
  fill(c, 6);
  c.set_length(6);
  EXPECT_STATUS(c.reorder({0, 1}), StatusCode::kInvalidArgument);
  EXPECT_STATUS(c.reorder({0, 1, 2, 0}), StatusCode::kInvalidArgument);
  EXPECT_STATUS(c.reorder({0, 1, 3}), StatusCode::kInvalidArgument);
  EXPECT_STATUS(c.reorder({-1, 1, 2}), StatusCode::kInvalidArgument);
  EXPECT_STATUS(c.reorder({}), StatusCode::kInvalidArgument);
  EXPECT_EQ(count_mismatches(c, {0, 1, 2}), 0);
  // An empty cache reorders trivially.
  c.set_length(0);
  EXPECT_OK(c.reorder({2, 2, 2}));
}

TEST(KvCache, BroadcastFirst) {
  KVCache c;
  ASSERT_OK(c.reset(2, 4, 10, 3));
  ASSERT_OK(c.broadcast_first(1));  // the prompt runs once, for beam 0
  EXPECT_EQ(c.beams(), 1);
  fill(c, 7);
  c.set_length(7);
  ASSERT_OK(c.broadcast_first(3));
  EXPECT_EQ(c.beams(), 3);
  EXPECT_EQ(c.length(), 7);
  EXPECT_EQ(count_mismatches(c, {0, 0, 0}), 0);
  EXPECT_STATUS(c.broadcast_first(5), StatusCode::kInvalidArgument) << "more beams than reset() allowed";
  EXPECT_STATUS(c.broadcast_first(0), StatusCode::kInvalidArgument);
  ASSERT_OK(c.broadcast_first(4));
  EXPECT_EQ(count_mismatches(c, {0, 0, 0, 0}), 0);
}

// Windows reuse the cache: a reset with the same shape and no more beams keeps the memory.
TEST(KvCache, ResetReusesMemory) {
  KVCache c;
  ASSERT_OK(c.reset(2, 4, 16, 8));
  const float* p = c.keys(0, 0);
  const size_t bytes = c.bytes();
  for (int beams : {4, 1, 3, 2, 4}) {
    ASSERT_OK(c.reset(2, beams, 16, 8));
    EXPECT_EQ(c.keys(0, 0), p) << "reset with " << beams << " beams reallocated";
    EXPECT_EQ(c.bytes(), bytes);
    EXPECT_EQ(c.beams(), beams);
    // Still a consistent layout with fewer beams.
    fill(c, 16);
    c.set_length(16);
    std::vector<int> id(static_cast<size_t>(beams));
    std::iota(id.begin(), id.end(), 0);
    EXPECT_EQ(count_mismatches(c, id), 0) << beams << " beams";
    if (beams >= 2) {
      std::vector<int> rev(id.rbegin(), id.rend());
      ASSERT_OK(c.reorder(rev));
      EXPECT_EQ(count_mismatches(c, rev), 0) << beams << " beams, reversed";
    }
  }
  // More beams, or another shape: new memory, and a consistent layout again.
  ASSERT_OK(c.reset(2, 6, 16, 8));
  EXPECT_GE(c.bytes(), 2u * (2 * 2 * 6 * 16 * 8) * sizeof(float));
  fill(c, 16);
  c.set_length(16);
  EXPECT_EQ(count_mismatches(c, {0, 1, 2, 3, 4, 5}), 0);
  ASSERT_OK(c.reset(3, 2, 5, 8));
  fill(c, 5);
  c.set_length(5);
  EXPECT_EQ(count_mismatches(c, {0, 1}), 0);
}

// Layers in memory owned elsewhere (a layer-step subgraph's bound input buffers): reads and
// writes go there, reorder and broadcast move rows inside it, the pointers never change.
TEST(KvCache, ExternalStorageIsUsedInPlace) {
  const int L = 3, B = 4, C = 8, d = 5;
  std::vector<float> k1(static_cast<size_t>(B) * C * d, -1.0f), v1(k1.size(), -1.0f);
  std::vector<KVCache::External> ext(L);
  ext[1] = KVCache::External{k1.data(), v1.data()};
  KVCache c;
  ASSERT_OK(c.reset(L, B, C, d, ext));
  EXPECT_TRUE(c.is_external(1));
  EXPECT_FALSE(c.is_external(0));
  EXPECT_TRUE(c.keys(1, 0) == k1.data() && c.values(1, 2) == v1.data() + 2 * C * d);
  fill(c, 6);
  c.set_length(6);
  EXPECT_EQ(k1[static_cast<size_t>(3 * C * d + 2 * d + 1)], tag(1, 0, 3, 2, 1));
  const std::vector<int> source = {2, 2, 0, 1};
  ASSERT_OK(c.reorder(source));
  EXPECT_EQ(count_mismatches(c, source), 0);
  EXPECT_TRUE(c.keys(1, 0) == k1.data());
  EXPECT_EQ(v1[static_cast<size_t>(0 * C * d + 5 * d + 4)], tag(1, 1, 2, 5, 4));
  // broadcast within the external buffers; never wider than they are
  ASSERT_OK(c.broadcast_first(B));
  EXPECT_EQ(count_mismatches(c, {2, 2, 2, 2}), 0);
  EXPECT_FALSE(c.broadcast_first(B + 1).ok());
  // a list of the wrong length is an error; an empty one returns every layer to own memory
  EXPECT_FALSE(c.reset(L, B, C, d, std::vector<KVCache::External>(2)).ok());
  ASSERT_OK(c.reset(L, B, C, d));
  EXPECT_FALSE(c.is_external(1));
  EXPECT_TRUE(c.keys(1, 0) != k1.data());
}
