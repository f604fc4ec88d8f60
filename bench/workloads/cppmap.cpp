// cppmap.cpp - a C++ workload for bench/run.sh: std::map and std::string
// heavy, as an indexer would be.  Builds a word -> positions index over
// generated text (node allocations, string growth, vector growth), then
// queries and erases part of it, several rounds.  Prints a checksum.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

static std::string word(unsigned x)
{
    static const char *syl[] = {"ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "ze"};
    std::string w;
    do {
        w += syl[x % 10];
        x /= 10;
    } while (x);
    return w;
}

int main()
{
    unsigned long checksum = 0, events = 0;
    for (int round = 0; round < 4; round++) {
        std::map<std::string, std::vector<unsigned>> index;
        unsigned seed = 12345u + (unsigned)round;
        for (unsigned pos = 0; pos < 60000; pos++) {
            seed = seed * 1103515245u + 12345u;
            std::string w = word((seed >> 8) % 20000);
            w += "-";
            w += std::to_string(pos % 7);
            index[w].push_back(pos);
            events++;
        }
        for (auto it = index.begin(); it != index.end();) {
            checksum = checksum * 31 + it->first.size() + it->second.size();
            if (it->second.size() % 2) it = index.erase(it);
            else ++it;
        }
        checksum += index.size();
    }
    std::printf("cppmap words=%lu checksum=%016lx\n", events, checksum);
    return 0;
}
