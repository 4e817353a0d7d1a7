// NameTable: block indices carried across, tensors a layout stores but the model skips (exact names and prefixes),
// and rules that cannot work refused when the table is made.
#include <gtest/gtest.h>

#include <stdexcept>

#include "motionstream/io/name_table.h"

using ms::io::NameTable;

TEST(NameTable, CarriesBlockIndicesBothWays) {
  const NameTable t("test", {{"encoder.block.{N}.q.weight", "blocks.{N}.attn.q.weight"}, {"shared.weight", "embed"}});
  EXPECT_EQ(t.to_ours("encoder.block.17.q.weight").value_or("?"), "blocks.17.attn.q.weight");
  EXPECT_EQ(t.to_stored("blocks.3.attn.q.weight").value_or("?"), "encoder.block.3.q.weight");
  EXPECT_EQ(t.to_ours("shared.weight").value_or("?"), "embed");
  EXPECT_FALSE(t.to_ours("encoder.block.07.q.weight")) << "a leading zero is not a block index";
  EXPECT_FALSE(t.to_ours("encoder.block.x.q.weight"));
  EXPECT_FALSE(t.to_ours("unknown"));
}

TEST(NameTable, SkippedTensorsByNameAndByPrefix) {
  const NameTable t("test", {{"visual.head", "head"}, {"textual.*", ""}, {"log_scale", ""}});
  EXPECT_EQ(t.to_ours("textual.token_embedding.weight").value_or("?"), "");
  EXPECT_EQ(t.to_ours("textual.blocks.3.attn.q.weight").value_or("?"), "");
  EXPECT_EQ(t.to_ours("log_scale").value_or("?"), "");
  EXPECT_FALSE(t.to_ours("log_scale_extra")) << "a name without '*' is exact";
  EXPECT_FALSE(t.to_ours("textualx")) << "the prefix includes its dot";
  EXPECT_FALSE(t.to_stored("")) << "a skipped tensor has no name of ours";
  EXPECT_EQ(t.to_ours("visual.head").value_or("?"), "head");
}

TEST(NameTable, RefusesRulesThatCannotWork) {
  EXPECT_THROW(NameTable("t", {{"a.{N}.w", "b.w"}}), std::invalid_argument);          // index dropped
  EXPECT_THROW(NameTable("t", {{"a.{N}.{N}.w", "b.{N}.w"}}), std::invalid_argument);  // two indices
  EXPECT_THROW(NameTable("t", {{"a.*", "b"}}), std::invalid_argument);                // '*' into a tensor
  EXPECT_THROW(NameTable("t", {{"a.*.w", ""}}), std::invalid_argument);               // '*' mid-name
  EXPECT_THROW(NameTable("t", {{"*", ""}}), std::invalid_argument);                   // everything
  EXPECT_THROW(NameTable("t", {{"a.{N}.*", ""}}), std::invalid_argument);             // '*' with an index
  EXPECT_NO_THROW(NameTable("t", {{"a.{N}.unused", ""}}));                            // an indexed skip
}
